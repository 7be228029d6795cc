"""The error-streak breaker counts failed orders, not requests: how a shell groups orders into
batches must not change when the breaker trips."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore import (
    Batch,
    CommandFailed,
    Halt,
    OrderAccepted,
    PlaceOrder,
    RiskConfig,
    Side,
    State,
    Submit,
    step,
)
from tests.unit.helpers import (
    EPOCH,
    SYMBOL,
    VENUE,
    Scripted,
    intend,
    kernel_config,
    of_type,
    scripted_state,
    synced,
)

T0 = EPOCH + 2_000


def _bot(max_error_streak: int) -> State[Scripted]:
    limits: dict[str, Any] = {"leverage": Decimal(10), "max_error_streak": max_error_streak}
    state, _ = synced(scripted_state(kernel_config(risk=RiskConfig(**limits))))
    return state


def _intents(n: int) -> list[Submit]:
    return [
        Submit(
            venue=VENUE,
            symbol=SYMBOL,
            side=Side.BUY,
            qty=Decimal("0.001"),
            price=Decimal(48000 + i),
        )
        for i in range(n)
    ]


def _answer(
    state: State[Scripted], places: list[PlaceOrder], fails: list[bool]
) -> tuple[State[Scripted], int]:
    """Answer each place in order (failed or accepted); return the state and the Halts seen."""
    halts = 0
    for i, (place, failed) in enumerate(zip(places, fails, strict=True)):
        ts = T0 + 100 + i
        event: CommandFailed | OrderAccepted
        if failed:
            event = CommandFailed(ts=ts, command_id=place.command_id, reason="500")
        else:
            event = OrderAccepted(
                ts=ts,
                venue=VENUE,
                cloid=place.cloid,
                venue_order_id=f"v{i}",
                command_id=place.command_id,
            )
        state, commands = step(state, event)
        halts += len(of_type(commands, Halt))
    return state, halts


def _as_batch(limit: int, fails: list[bool]) -> tuple[int, bool, int]:
    state, commands = intend(_bot(limit), _intents(len(fails)), ts=T0)
    places = of_type(commands, PlaceOrder)
    assert len(places) == len(fails)
    if len(fails) > 1:
        assert any(isinstance(c, Batch) for c in commands)  # really sent as one request
    state, halts = _answer(state, places, fails)
    return state.risk.error_streak, state.risk.halted, halts


def _one_by_one(limit: int, fails: list[bool]) -> tuple[int, bool, int]:
    state = _bot(limit)
    places: list[PlaceOrder] = []
    for i, intent in enumerate(_intents(len(fails))):
        state, commands = intend(state, [intent], ts=T0 + i)
        assert not any(isinstance(c, Batch) for c in commands)
        places += of_type(commands, PlaceOrder)
    state, halts = _answer(state, places, fails)
    return state.risk.error_streak, state.risk.halted, halts


def test_a_failed_batch_counts_each_of_its_orders() -> None:
    """Five orders in one failed request are five errors: a limit of 5 halts."""
    streak, halted, halts = _as_batch(5, [True] * 5)
    assert (streak, halted, halts) == (5, True, 1)
    assert _one_by_one(5, [True] * 5) == (5, True, 1)


@settings(max_examples=40, deadline=None)
@given(
    fails=st.lists(st.booleans(), min_size=1, max_size=6),
    limit=st.integers(min_value=1, max_value=6),
)
def test_batched_or_single_the_breaker_counts_the_same(fails: list[bool], limit: int) -> None:
    assert _as_batch(limit, fails) == _one_by_one(limit, fails)

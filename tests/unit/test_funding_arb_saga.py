"""The funding-arbitrage saga tables, fed by hand: every signal and snapshot is written out, so
each test reads as the story of one entry."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from gridcore import Cancel, Intent, Level, Refresh, RefreshKind, Say, Side, Submit
from gridcore.saga import DEADLINE, Saga, Signal, advance, start
from gridcore.strategies.funding_arb import (
    ENTRY,
    Detail,
    Entry,
    FundingArbConfig,
    Params,
    Phase,
    Snapshot,
    specs,
)

ZERO = Decimal(0)
MS = 5_000
PARAMS = Params(
    venue_a="a",
    venue_b="b",
    symbol_a="ETH-USD",
    symbol_b="ETH",
    tick_a=Decimal("0.01"),
    tick_b=Decimal("0.1"),
    lot_a=Decimal("0.001"),
    lot_b=Decimal("0.01"),
    min_notional_a=Decimal(10),
    min_notional_b=Decimal(10),
    leverage=Decimal(10),
    slippage=Decimal("0.002"),
    max_attempts=3,
    max_report_age_ms=10_000,
    margin_buffer=Decimal("1.2"),
)


def snap(now: int, a: str = "0", b: str = "0") -> Snapshot:
    return Snapshot(
        now=now,
        pos_a=Decimal(a),
        pos_b=Decimal(b),
        avail_a=Decimal(10_000),
        avail_b=Decimal(10_000),
        bal_ts_a=now,
        bal_ts_b=now,
        mid_a=Decimal(3000),
        mid_b=Decimal(3000),
    )


def sig(kind: str, now: int, a: str = "0", b: str = "0", qty: str = "0", **kw: object) -> Signal:
    return Signal(kind=kind, qty=Decimal(qty), detail=Detail(snap=snap(now, a, b), **kw))  # type: ignore[arg-type]


def answers(
    saga: Saga[Entry], now: int, a: str, b: str, *whats: str
) -> tuple[Saga[Entry], list[Intent]]:
    """Both venues answer the saga's latest request for each of ``whats``."""
    out: list[Intent] = []
    for what in whats:
        for key in ("a", "b"):
            refresh = (key, what, saga.data.asked_at, now)
            saga, intents = advance(ENTRY, saga, sig("refreshed", now, a, b, refresh=refresh), now)
            out.extend(intents)
    return saga, out


def submits(intents: Sequence[Intent]) -> list[Submit]:
    return [i for i in intents if isinstance(i, Submit)]


def begin(now: int = 0) -> Saga[Entry]:
    """An entry long on venue a with leg 1 on venue a, past its refresh and into LEG1."""
    data = Entry(
        saga_id="e1",
        kind="entry",
        long="a",
        first="a",
        qty=Decimal("0.66"),
        notional=Decimal(2000),
        asked_at=now,
        snap=snap(now),
        params=PARAMS,
    )
    saga, _ = start(ENTRY, "e1", data, now)
    saga, out = answers(saga, now + 10, "0", "0", "balances", "positions")
    [leg1] = submits(out)
    assert (leg1.venue, leg1.side, leg1.qty, leg1.reduce_only) == (
        "a",
        Side.BUY,
        Decimal("0.66"),
        False,
    )
    assert saga.phase is Phase.LEG1 and saga.data.reserved == Decimal(240)
    saga, _ = advance(ENTRY, saga, sig("leg1_named", now + 11, cloid="c1"), now + 11)
    return saga


def test_a_rollback_that_never_fills_stops_in_stuck_with_an_alert() -> None:
    saga = begin()
    saga, out = advance(ENTRY, saga, sig("leg1_filled", 20, a="0.66", qty="0.66"), 20)
    [leg2] = submits(out)
    assert (leg2.venue, leg2.side, leg2.qty) == ("b", Side.SELL, Decimal("0.66"))
    saga, _ = advance(ENTRY, saga, sig("leg2_named", 21, a="0.66", cloid="c2"), 21)
    saga, out = advance(ENTRY, saga, sig("leg2_refused", 22, a="0.66", code="max_position"), 22)
    assert saga.phase is Phase.ROLLBACK_REFRESH
    assert {(r.venue, r.what) for r in out if isinstance(r, Refresh)} == {
        ("a", RefreshKind.POSITIONS),
        ("b", RefreshKind.POSITIONS),
    }
    now = 30
    for attempt in range(1, 4):
        saga, out = answers(saga, now, "0.66", "0", "positions")
        [rollback] = submits(out)
        # Exactly the reported position, reduce-only, on the venue that holds it.
        assert (rollback.venue, rollback.side, rollback.qty) == ("a", Side.SELL, Decimal("0.66"))
        assert rollback.reduce_only and rollback.ref == ("e1", "rollback_a", attempt)
        saga, _ = advance(
            ENTRY, saga, sig("rollback_a_named", now + 1, a="0.66", cloid=f"r{attempt}"), now + 1
        )
        saga, out = advance(ENTRY, saga, sig("rollback_a_ended_empty", now + 2, a="0.66"), now + 2)
        assert saga.phase is Phase.ROLLBACK_REFRESH
        now += 100
    saga, out = answers(saga, now, "0.66", "0", "positions")
    assert saga.phase is Phase.STUCK and saga.terminal
    [alert] = [i for i in out if isinstance(i, Say)]
    assert alert.level is Level.ALERT and alert.code == "funding_arb_stuck"
    assert saga.data.cause == "leg 2 refused (max_position)"
    assert saga.data.reserved == ZERO


def test_a_refused_rollback_is_retried_at_the_deadline_without_counting_a_round() -> None:
    saga = begin()
    saga, _ = advance(ENTRY, saga, sig("leg1_filled", 20, a="0.66", qty="0.66"), 20)
    saga, _ = advance(ENTRY, saga, sig("leg2_ended_empty", 22, a="0.66"), 22)
    for n in range(5):
        saga, out = answers(saga, 30 + n * MS * 3, "0.66", "0", "positions")
        assert saga.phase is Phase.ROLLING_BACK and len(submits(out)) == 1
        at = 31 + n * MS * 3
        saga, _ = advance(
            ENTRY, saga, sig("rollback_a_refused", at, a="0.66", code="stale_quote"), at
        )
        assert saga.phase is Phase.ROLLING_BACK and not saga.data.live
        saga, out = advance(ENTRY, saga, sig(DEADLINE, at + MS, a="0.66"), at + MS)
        assert saga.phase is Phase.ROLLBACK_REFRESH
    assert saga.data.tries == 0 and not saga.terminal


def test_leg1_partly_filled_whose_cancel_is_never_answered_is_rolled_back() -> None:
    saga = begin()
    saga, out = advance(ENTRY, saga, sig(DEADLINE, MS + 10, a="0"), MS + 10)
    assert saga.phase is Phase.CANCELING_LEG1 and Cancel(cloid="c1") in out
    saga, _ = advance(ENTRY, saga, sig("leg1_partial", MS + 20, a="0.2", qty="0.2"), MS + 20)
    saga, out = advance(ENTRY, saga, sig(DEADLINE, 2 * MS + 20, a="0.2"), 2 * MS + 20)
    assert saga.phase is Phase.ROLLBACK_REFRESH and Cancel(cloid="c1") in out
    assert saga.data.cause == "leg 1 cancel unanswered"
    # Positions answered while leg 1 is still live: nothing is closed yet.
    saga, out = answers(saga, 2 * MS + 30, "0.2", "0", "positions")
    assert saga.phase is Phase.ROLLBACK_REFRESH and submits(out) == []
    saga, _ = advance(
        ENTRY, saga, sig("leg1_ended_part", 2 * MS + 40, a="0.25", qty="0.25"), 2 * MS + 40
    )
    saga, out = advance(ENTRY, saga, sig(DEADLINE, 3 * MS + 30, a="0.25"), 3 * MS + 30)
    saga, out = answers(saga, 3 * MS + 40, "0.25", "0", "positions")
    [rollback] = submits(out)
    assert (rollback.venue, rollback.qty, rollback.reduce_only) == ("a", Decimal("0.25"), True)
    saga, _ = advance(ENTRY, saga, sig("rollback_a_filled", 3 * MS + 50, qty="0.25"), 3 * MS + 50)
    saga, _ = answers(saga, 3 * MS + 60, "0", "0", "positions")
    assert saga.phase is Phase.ROLLED_BACK and saga.data.naked_since is None


def test_a_silent_leg2_is_canceled_then_rolled_back_and_a_late_fill_hedges() -> None:
    saga = begin()
    saga, _ = advance(ENTRY, saga, sig("leg1_filled", 20, a="0.66", qty="0.66"), 20)
    saga, _ = advance(ENTRY, saga, sig("leg2_named", 21, a="0.66", cloid="c2"), 21)
    saga, out = advance(ENTRY, saga, sig(DEADLINE, MS + 20, a="0.66"), MS + 20)
    assert saga.phase is Phase.CANCELING_LEG2 and Cancel(cloid="c2") in out
    saga, out = advance(ENTRY, saga, sig(DEADLINE, 2 * MS + 20, a="0.66"), 2 * MS + 20)
    assert saga.phase is Phase.ROLLBACK_REFRESH and Cancel(cloid="c2") in out
    assert saga.data.cause == "leg 2 overdue"
    # Leg 2 fills after all: the positions match, the entry is hedged with nothing closed.
    saga, _ = advance(
        ENTRY, saga, sig("leg2_filled", 2 * MS + 30, a="0.66", b="-0.66", qty="0.66"), 2 * MS + 30
    )
    saga, out = answers(saga, 2 * MS + 40, "0.66", "-0.66", "positions")
    assert saga.phase is Phase.HEDGED and submits(out) == []
    assert saga.data.naked_ms == 2 * MS + 30 - 20  # from leg 1's fill to the matching leg 2


def test_leg1_too_small_to_hedge_is_closed_whole() -> None:
    """0.005 filled on venue a is under venue b's lot (0.01): nothing can hedge it."""
    saga = begin()
    saga, out = advance(ENTRY, saga, sig("leg1_ended_part", 20, a="0.005", qty="0.005"), 20)
    assert saga.phase is Phase.ROLLBACK_REFRESH and submits(out) == []
    saga, out = answers(saga, 30, "0.005", "0", "positions")
    [rollback] = submits(out)
    assert rollback.qty == Decimal("0.005") and rollback.reduce_only


def test_tables_follow_the_configured_deadlines() -> None:
    cfg = FundingArbConfig(leg_timeout_ms=1_000, refresh_timeout_ms=2_000, max_naked_ms=4_000)
    entry, exit_ = specs(cfg)
    assert entry.deadlines[Phase.LEG1] == 1_000 and entry.deadlines[Phase.REFRESHING] == 2_000
    assert exit_.deadlines[Phase.CLOSING] == 1_000
    assert specs(cfg) == (entry, exit_)


def test_a_difference_under_the_larger_venues_lot_is_closed_on_both_venues() -> None:
    """Venue a holds 0.165 long (lot 0.001), venue b 0.17 short (lot 0.01): b cannot close
    0.005. Both come down to 0.16, the largest size both venues accept, reduce-only."""
    saga = begin()
    saga, _ = advance(ENTRY, saga, sig("leg1_filled", 20, a="0.17", qty="0.17"), 20)
    saga, _ = advance(
        ENTRY, saga, sig("leg2_ended_part", 22, a="0.17", b="-0.165", qty="0.165"), 22
    )
    saga, out = answers(saga, 30, "0.165", "-0.17", "positions")
    orders = {o.venue: o for o in submits(out)}
    assert (orders["a"].side, orders["a"].qty) == (Side.SELL, Decimal("0.005"))
    assert (orders["b"].side, orders["b"].qty) == (Side.BUY, Decimal("0.01"))
    assert all(o.reduce_only for o in orders.values())
    saga, _ = advance(
        ENTRY, saga, sig("rollback_a_named", 31, a="0.165", b="-0.17", cloid="ra"), 31
    )
    saga, _ = advance(
        ENTRY, saga, sig("rollback_b_named", 31, a="0.165", b="-0.17", cloid="rb"), 31
    )
    saga, _ = advance(
        ENTRY, saga, sig("rollback_a_filled", 40, a="0.16", b="-0.17", qty="0.005"), 40
    )
    assert saga.phase is Phase.ROLLING_BACK  # the other close is still live
    saga, _ = advance(
        ENTRY, saga, sig("rollback_b_filled", 41, a="0.16", b="-0.16", qty="0.01"), 41
    )
    assert saga.phase is Phase.ROLLBACK_REFRESH
    saga, _ = answers(saga, 50, "0.16", "-0.16", "positions")
    assert saga.phase is Phase.HEDGED

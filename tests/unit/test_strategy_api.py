"""The strategy API: submit with a ref, modify, strategy timers, refresh, reports, stimuli.

Every test drives the kernel through :func:`gridcore.step` with a strategy that does only what
the test scripts (through a timer it owns), and records everything the kernel tells it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Self

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore import (
    BalanceReported,
    CancelOrder,
    CancelTimer,
    ClearTimer,
    CommandFailed,
    CommandTimedOut,
    ContractError,
    Event,
    FeedDisconnected,
    FundingRateUpdated,
    Intent,
    Modify,
    ModifyOrder,
    ModifyRefused,
    ModifyRejected,
    OrderAccepted,
    OrderChange,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderStatus,
    PlaceOrder,
    PositionReport,
    PositionSide,
    PositionsReported,
    QuoteTicked,
    Refresh,
    Refreshed,
    RefreshFailed,
    RefreshKind,
    RequestBalances,
    RequestPositions,
    RiskConfig,
    SetTimer,
    Side,
    Started,
    StartTimer,
    State,
    Stimulus,
    Submit,
    SubmitRefused,
    TimerFired,
    initial_state,
    step,
)
from gridcore.api import Desk, PendingRefresh
from gridcore.core import MAINTENANCE_TIMER
from gridcore.sim import SimExchange
from gridcore.sim.backtest import run_backtest
from gridcore.sim.exchange import SimConfig
from gridcore.sim.market import synthetic_path
from gridcore.sync import SyncPhase
from tests.unit.helpers import (
    ASK,
    BID,
    EPOCH,
    SYMBOL,
    VENUE,
    fill,
    instrument,
    kernel_config,
    of_type,
    only,
    reservation_problems,
    run_with_exchange,
    synced,
)

T0 = EPOCH + 1_000
GO = "go"


@attrs.frozen(kw_only=True)
class Recorder:
    """A strategy of the new API: returns ``script[name]`` when its timer ``name`` fires (or a
    raw ``TimerFired`` with that id arrives) and records what the kernel says."""

    script: Mapping[str, tuple[Intent, ...]] = attrs.field(factory=dict)
    changes: tuple[OrderChange, ...] = ()
    stimuli: tuple[Stimulus, ...] = ()
    events: tuple[Event, ...] = ()
    timers: tuple[str, ...] = ()
    resubmit: bool = False

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]] | None:
        return None

    def on_changes(
        self, view: State[Self], changes: Sequence[OrderChange]
    ) -> tuple[Self, Sequence[Intent]]:
        return attrs.evolve(self, changes=self.changes + tuple(changes)), ()

    def on_ready(self, view: State[Self], venue: str) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def on_timer(self, view: State[Self], timer_id: str) -> tuple[Self, Sequence[Intent]]:
        return attrs.evolve(self, timers=(*self.timers, timer_id)), self.script.get(timer_id, ())

    def on_event(self, view: State[Self], event: Event) -> tuple[Self, Sequence[Intent]]:
        return attrs.evolve(self, events=(*self.events, event)), ()

    def on_stimulus(self, view: State[Self], stimulus: Stimulus) -> tuple[Self, Sequence[Intent]]:
        new = attrs.evolve(self, stimuli=(*self.stimuli, stimulus))
        if self.resubmit and isinstance(stimulus, SubmitRefused):
            return new, [_submit(ref=stimulus.ref, qty="5")]
        return new, ()


@attrs.frozen(kw_only=True)
class OldStyle:
    """A strategy of the first protocol: no ``on_stimulus``."""

    script: Mapping[str, tuple[Intent, ...]] = attrs.field(factory=dict)

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]] | None:
        return None

    def on_changes(
        self, view: State[Self], changes: Sequence[OrderChange]
    ) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def on_ready(self, view: State[Self], venue: str) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def on_timer(self, view: State[Self], timer_id: str) -> tuple[Self, Sequence[Intent]]:
        return self, self.script.get(timer_id, ())

    def on_event(self, view: State[Self], event: Event) -> tuple[Self, Sequence[Intent]]:
        return self, ()


def _submit(
    *, ref: Hashable = None, qty: str = "0.01", price: str = "49000", side: Side = Side.BUY
) -> Submit:
    return Submit(
        venue=VENUE, symbol=SYMBOL, side=side, qty=Decimal(qty), price=Decimal(price), ref=ref
    )


def _bot(risk: RiskConfig | None = None) -> State[Recorder]:
    state, _ = synced(initial_state(kernel_config(risk=risk), Recorder(), epoch=EPOCH), ts=T0)
    return state


def _do(
    state: State[Recorder], intents: Sequence[Intent], *, ts: int
) -> tuple[State[Recorder], list[Any]]:
    armed = attrs.evolve(state, strategy=attrs.evolve(state.strategy, script={GO: tuple(intents)}))
    new, commands = step(armed, TimerFired(ts=ts, timer_id=GO))
    return attrs.evolve(new, strategy=attrs.evolve(new.strategy, script={})), commands


def _resting(
    state: State[Recorder], *, ref: Hashable = "tp", qty: str = "0.01", submit: Submit | None = None
) -> tuple[State[Recorder], PlaceOrder]:
    """``submit`` (default: a buy of ``qty`` named ``ref``) placed and accepted."""
    state, commands = _do(state, [submit or _submit(ref=ref, qty=qty)], ts=T0 + 1)
    place = only(commands, PlaceOrder)
    state, _ = step(
        state,
        OrderAccepted(
            ts=T0 + 2,
            venue=VENUE,
            cloid=place.cloid,
            venue_order_id="v1",
            command_id=place.command_id,
        ),
    )
    return state, place


# --- submit with a ref ------------------------------------------------------------------------


def test_a_ref_submit_is_told_its_cloid_in_the_same_step_and_every_change_carries_the_ref() -> None:
    state, commands = _do(_bot(), [_submit(ref=("entry", 1))], ts=T0 + 1)
    place = only(commands, PlaceOrder)
    [named] = state.strategy.changes
    assert named.before is None and named.after.cloid == place.cloid
    assert named.ref == ("entry", 1) and named.after.status is OrderStatus.PENDING_NEW
    state, _ = step(
        state,
        OrderFilled(
            ts=T0 + 2,
            fill=fill("f1", Side.BUY, "0.01", "49000", ts=T0 + 2, cloid=place.cloid),
        ),
    )
    last = state.strategy.changes[-1]
    assert last.after.status is OrderStatus.FILLED and last.ref == ("entry", 1)
    assert state.orders_with_ref(("entry", 1)) == [state.orders[place.cloid]]


@attrs.frozen(kw_only=True)
class ViewKeeper(Recorder):
    """A :class:`Recorder` that keeps every view it is shown, with copies of what the view's
    books held when it was shown, and answers the first change it is told with one more order."""

    shown: tuple[tuple[State[Any], dict[str, Any], dict[Any, Any], dict[Any, Any]], ...] = ()

    def on_changes(
        self, view: State[Self], changes: Sequence[OrderChange]
    ) -> tuple[Self, Sequence[Intent]]:
        books = view.books
        kept = (view, dict(books.orders), dict(books.venue_oids), dict(books.inflight))
        new = attrs.evolve(self, changes=self.changes + tuple(changes), shown=(*self.shown, kept))
        return new, [_submit(ref="second", price="48000")] if len(self.shown) == 0 else ()


def test_a_view_shown_to_the_strategy_does_not_change_under_it_later_in_the_step() -> None:
    # The working copy of a step copies the order registry on its first write; a view taken
    # after that write must not share the copy, or the next write of the same step (here: the
    # order the strategy asks for on seeing the first) changes what the strategy was shown.
    state = attrs.evolve(_bot(), strategy=ViewKeeper())
    state, commands = _do(state, [_submit(ref="first")], ts=T0 + 1)
    assert len(of_type(commands, PlaceOrder)) == 2
    keeper = state.strategy
    assert isinstance(keeper, ViewKeeper) and len(keeper.shown) == 2
    for view, orders, oids, inflight in keeper.shown:
        assert dict(view.books.orders) == orders
        assert dict(view.books.venue_oids) == oids
        assert dict(view.books.inflight) == inflight
    first_view = keeper.shown[0][0]
    assert [o.ref for o in first_view.orders.values()] == ["first"]


def test_a_submit_without_a_ref_is_not_reported_back_as_before() -> None:
    state, commands = _do(_bot(), [_submit()], ts=T0 + 1)
    assert of_type(commands, PlaceOrder) and state.strategy.changes == ()


@pytest.mark.parametrize(
    ("risk", "code"),
    [
        (RiskConfig(leverage=Decimal(10), max_position=Decimal("0.001")), "max_position"),
        (RiskConfig(leverage=Decimal(10), max_order_notional=Decimal(5)), "max_order_notional"),
    ],
)
def test_a_refused_ref_submit_says_why(risk: RiskConfig, code: str) -> None:
    state, commands = _do(_bot(risk), [_submit(ref="big")], ts=T0 + 1)
    assert of_type(commands, PlaceOrder) == []
    [refused] = state.strategy.stimuli
    assert isinstance(refused, SubmitRefused)
    assert refused.ref == "big" and refused.code == code and refused.message
    assert state.strategy.changes == ()


def test_a_ref_submit_before_the_venue_is_ready_is_refused_not_ready() -> None:
    state = initial_state(kernel_config(), Recorder(), epoch=EPOCH)
    state, _ = _do(state, [_submit(ref=7)], ts=T0)
    [refused] = state.strategy.stimuli
    assert isinstance(refused, SubmitRefused) and refused.code == "not_ready"


def test_a_strategy_without_on_stimulus_cannot_use_refs_modify_or_refresh() -> None:
    old, _ = synced(initial_state(kernel_config(), OldStyle(), epoch=EPOCH), ts=T0)
    for intent in (
        _submit(ref="x"),
        Modify(cloid="c", price=Decimal(1)),
        Refresh(venue=VENUE, what=RefreshKind.BALANCES),
    ):
        armed = attrs.evolve(old, strategy=OldStyle(script={GO: (intent,)}))
        with pytest.raises(ContractError, match="on_stimulus"):
            step(armed, TimerFired(ts=T0 + 1, timer_id=GO))


def test_a_strategy_that_resubmits_on_every_refusal_is_stopped_with_a_clear_error() -> None:
    state = _bot(RiskConfig(leverage=Decimal(10), max_position=Decimal("0.001")))
    state = attrs.evolve(state, strategy=attrs.evolve(state.strategy, resubmit=True))
    with pytest.raises(ContractError, match="rounds in one step"):
        _do(state, [_submit(ref="again", qty="5")], ts=T0 + 1)


# --- modify -------------------------------------------------------------------------------------


def test_modify_goes_out_and_the_venues_answer_moves_the_order_through_the_table() -> None:
    state, place = _resting(_bot())
    state, commands = _do(
        state, [Modify(cloid=place.cloid, price=Decimal("49500"), qty=Decimal("0.02"))], ts=T0 + 3
    )
    cmd = only(commands, ModifyOrder)
    assert (cmd.cloid, cmd.venue_order_id, cmd.price, cmd.qty) == (
        place.cloid,
        "v1",
        Decimal("49500"),
        Decimal("0.02"),
    )
    pending = state.orders[place.cloid]
    assert pending.modify_to == (Decimal("49500"), Decimal("0.02"))
    assert pending.price == Decimal("49000") and pending.status is OrderStatus.OPEN
    assert state.inflight[cmd.command_id].kind == "modify"
    state, _ = step(
        state,
        OrderModified(
            ts=T0 + 4,
            venue=VENUE,
            cloid=place.cloid,
            price=Decimal("49500"),
            qty=Decimal("0.02"),
            command_id=cmd.command_id,
        ),
    )
    done = state.orders[place.cloid]
    assert (done.price, done.qty, done.modify_to) == (Decimal("49500"), Decimal("0.02"), None)
    change = state.strategy.changes[-1]
    assert change.before is not None and change.before.price == Decimal("49000")
    assert change.after.qty == Decimal("0.02") and change.ref == "tp"
    assert cmd.command_id not in state.inflight
    assert reservation_problems(state) == []


def test_a_fill_beyond_the_old_size_while_an_increase_is_out_applies_the_modify() -> None:
    """The venue applied an increase and filled part of the new size; its stream overtook the
    modify's answer. The order is the modified one, partly filled and still live (never done
    while its remainder rests at the venue); the late answer changes nothing."""
    state, place = _resting(_bot())
    state, commands = _do(
        state, [Modify(cloid=place.cloid, price=Decimal("49500"), qty=Decimal("0.02"))], ts=T0 + 3
    )
    cmd = only(commands, ModifyOrder)
    state, commands = step(
        state,
        OrderPartiallyFilled(
            ts=T0 + 4, fill=fill("f1", Side.BUY, "0.015", "49500", ts=T0 + 4, cloid=place.cloid)
        ),
    )
    order = state.orders[place.cloid]
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert (order.price, order.qty, order.filled_qty, order.modify_to) == (
        Decimal("49500"),
        Decimal("0.02"),
        Decimal("0.015"),
        None,
    )
    assert not [c for c in commands if getattr(c, "code", None) == "overfill"]
    assert reservation_problems(state) == []
    state, _ = step(
        state,
        OrderModified(
            ts=T0 + 5,
            venue=VENUE,
            cloid=place.cloid,
            price=Decimal("49500"),
            qty=Decimal("0.02"),
            command_id=cmd.command_id,
        ),
    )
    assert state.orders[place.cloid] == attrs.evolve(
        order, updated_ts=state.orders[place.cloid].updated_ts
    )
    assert cmd.command_id not in state.inflight
    assert reservation_problems(state) == []


def test_a_venue_that_re_ids_the_order_on_modify_keeps_its_cloid() -> None:
    state, place = _resting(_bot())
    state, commands = _do(state, [Modify(cloid=place.cloid, price=Decimal("48000"))], ts=T0 + 3)
    cmd = only(commands, ModifyOrder)
    state, _ = step(
        state,
        OrderModified(
            ts=T0 + 4,
            venue=VENUE,
            cloid=place.cloid,
            price=Decimal("48000"),
            qty=Decimal("0.01"),
            command_id=cmd.command_id,
            venue_order_id="v2",
        ),
    )
    assert state.orders[place.cloid].venue_order_id == "v2"
    assert state.venue_oids[(VENUE, "v2")] == place.cloid
    # A fill that names only the new venue order id lands on the same order.
    state, _ = step(
        state,
        OrderFilled(
            ts=T0 + 5, fill=fill("f1", Side.BUY, "0.01", "48000", ts=T0 + 5, venue_order_id="v2")
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.FILLED


def test_a_modify_the_venue_rejects_leaves_the_order_and_releases_the_increase() -> None:
    state, place = _resting(_bot())
    before = state.orders[place.cloid]
    reserved = state.risk.reserved[VENUE]
    state, commands = _do(state, [Modify(cloid=place.cloid, qty=Decimal("0.03"))], ts=T0 + 3)
    cmd = only(commands, ModifyOrder)
    assert state.risk.reserved[VENUE] > reserved  # the increase is reserved like a new order
    assert reservation_problems(state) == []
    state, _ = step(
        state,
        ModifyRejected(
            ts=T0 + 4, venue=VENUE, cloid=place.cloid, reason="no", command_id=cmd.command_id
        ),
    )
    after = state.orders[place.cloid]
    assert (after.qty, after.price, after.modify_to) == (before.qty, before.price, None)
    assert state.risk.reserved[VENUE] == reserved and reservation_problems(state) == []
    [refused] = state.strategy.stimuli
    assert isinstance(refused, ModifyRefused) and refused.code == "rejected"
    assert refused.ref == "tp" and "no" in refused.message


def test_a_modify_that_fails_before_reaching_the_venue_is_a_rejection() -> None:
    state, place = _resting(_bot())
    state, commands = _do(state, [Modify(cloid=place.cloid, price=Decimal("48500"))], ts=T0 + 3)
    cmd = only(commands, ModifyOrder)
    state, _ = step(
        state, CommandFailed(ts=T0 + 4, command_id=cmd.command_id, reason="401", not_applied=True)
    )
    assert state.orders[place.cloid].status is OrderStatus.OPEN
    assert [s.code for s in state.strategy.stimuli if isinstance(s, ModifyRefused)] == ["rejected"]


def test_a_modify_with_an_unknown_outcome_takes_the_order_off_the_book() -> None:
    state, place = _resting(_bot())
    state, commands = _do(state, [Modify(cloid=place.cloid, qty=Decimal("0.02"))], ts=T0 + 3)
    cmd = only(commands, ModifyOrder)
    state, commands = step(state, CommandTimedOut(ts=T0 + 9, command_id=cmd.command_id))
    assert only(commands, CancelOrder).cloid == place.cloid
    assert state.orders[place.cloid].status is OrderStatus.PENDING_CANCEL
    [refused] = state.strategy.stimuli
    assert isinstance(refused, ModifyRefused) and refused.code == "uncertain"
    # The larger size may rest at the venue: its reservation is kept until the order ends.
    assert state.orders[place.cloid].reserved > 0 and reservation_problems(state) == []


@pytest.mark.parametrize(
    ("modify", "code"),
    [
        (Modify(cloid="nope", price=Decimal(1)), "not_modifiable"),
        (Modify(cloid="PLACED"), "no_change"),
        (Modify(cloid="PLACED", qty=Decimal("0.0105")), "bad_values"),
        (Modify(cloid="PLACED", price=Decimal("49000.05")), "bad_values"),
        (Modify(cloid="PLACED", qty=Decimal("5")), "max_position"),
    ],
)
def test_a_modify_the_kernel_refuses_says_why(modify: Modify, code: str) -> None:
    risk = RiskConfig(
        leverage=Decimal(10), max_position=Decimal("1"), max_order_notional=None, max_drawdown=None
    )
    state, place = _resting(_bot(risk))
    if modify.cloid == "PLACED":
        modify = attrs.evolve(modify, cloid=place.cloid)
    before = state.orders[place.cloid]
    state, commands = _do(state, [modify], ts=T0 + 3)
    assert of_type(commands, ModifyOrder) == []
    [refused] = state.strategy.stimuli
    assert isinstance(refused, ModifyRefused) and refused.code == code
    assert state.orders[place.cloid] == before


def test_while_halted_only_a_reduce_only_order_may_be_modified() -> None:
    """An order still resting during a halt (its cancel was refused, say): moving it must not
    add exposure, so only a reduce-only order may be moved."""
    state, place = _resting(_bot())
    halted = attrs.evolve(
        state,
        books=attrs.evolve(
            state.books, risk=attrs.evolve(state.risk, halted=True, halt_reason="test")
        ),
    )
    _, commands = _do(halted, [Modify(cloid=place.cloid, price=Decimal("48000"))], ts=T0 + 3)
    assert of_type(commands, ModifyOrder) == []
    reduce_only = attrs.evolve(
        halted,
        books=attrs.evolve(
            halted.books,
            orders={
                **halted.orders,
                place.cloid: attrs.evolve(halted.orders[place.cloid], reduce_only=True),
            },
        ),
    )
    _, commands = _do(reduce_only, [Modify(cloid=place.cloid, price=Decimal("48000"))], ts=T0 + 3)
    assert only(commands, ModifyOrder).price == Decimal("48000")


def test_one_modify_at_a_time_and_none_before_the_order_rests() -> None:
    state, commands = _do(_bot(), [_submit(ref="r")], ts=T0 + 1)
    cloid = only(commands, PlaceOrder).cloid
    state, commands = _do(state, [Modify(cloid=cloid, price=Decimal("48000"))], ts=T0 + 2)
    assert of_type(commands, ModifyOrder) == []  # PENDING_NEW: the venue may not have it yet
    state, _ = step(state, OrderAccepted(ts=T0 + 3, venue=VENUE, cloid=cloid, venue_order_id="v9"))
    state, commands = _do(
        state,
        [Modify(cloid=cloid, price=Decimal("48000")), Modify(cloid=cloid, price=Decimal("47000"))],
        ts=T0 + 4,
    )
    assert len(of_type(commands, ModifyOrder)) == 1
    assert [s.code for s in state.strategy.stimuli if isinstance(s, ModifyRefused)] == [
        "not_modifiable",
        "not_modifiable",
    ]


def test_a_fill_while_a_modify_is_out_is_applied() -> None:
    state, place = _resting(_bot())
    state, commands = _do(state, [Modify(cloid=place.cloid, qty=Decimal("0.02"))], ts=T0 + 3)
    cmd = only(commands, ModifyOrder)
    state, _ = step(
        state,
        OrderFilled(
            ts=T0 + 4, fill=fill("f1", Side.BUY, "0.01", "49000", ts=T0 + 4, cloid=place.cloid)
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.FILLED
    state, _ = step(
        state,
        ModifyRejected(
            ts=T0 + 5, venue=VENUE, cloid=place.cloid, reason="filled", command_id=cmd.command_id
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.FILLED
    assert reservation_problems(state) == []


def test_modify_end_to_end_on_the_simulated_venue_including_a_re_id() -> None:
    exchange = SimExchange(
        SimConfig(venue=VENUE, instruments=(instrument(),), reid_on_modify=True), start_ts=EPOCH
    )
    state, place = _resting(_bot())
    state, _ = run_with_exchange(state, exchange, [place], now=T0 + 2)
    state, commands = _do(
        state, [Modify(cloid=place.cloid, price=Decimal("49100"), qty=Decimal("0.02"))], ts=T0 + 3
    )
    state, _ = run_with_exchange(state, exchange, commands, now=T0 + 3)
    order = state.orders[place.cloid]
    assert (order.price, order.qty, order.modify_to) == (Decimal("49100"), Decimal("0.02"), None)
    held = exchange.orders[place.cloid]
    assert (held.price, held.qty) == (Decimal("49100"), Decimal("0.02"))
    assert order.venue_order_id == held.oid and state.venue_oids[(VENUE, held.oid)] == place.cloid


# --- timers ---------------------------------------------------------------------------------------


def test_strategy_timers_live_in_their_own_namespace() -> None:
    state, commands = _do(_bot(), [SetTimer(name="tp", fire_at=T0 + 500)], ts=T0 + 1)
    start = only(commands, StartTimer)
    assert start.timer_id == "strategy:tp" and start.fire_at == T0 + 500
    state, _ = step(state, TimerFired(ts=T0 + 500, timer_id="strategy:tp"))
    assert state.strategy.timers[-1] == "tp"
    assert "tp" not in state.desk.timers  # one-shot: gone once fired
    # A second fire of a one-shot timer (a duplicate from the shell) is not delivered.
    state, _ = step(state, TimerFired(ts=T0 + 501, timer_id="strategy:tp"))
    assert state.strategy.timers.count("tp") == 1


def test_a_cleared_timer_never_fires_into_the_strategy() -> None:
    state, _ = _do(_bot(), [SetTimer(name="x", fire_at=T0 + 50, every_ms=10)], ts=T0 + 1)
    state, commands = _do(state, [ClearTimer(name="x")], ts=T0 + 2)
    assert only(commands, CancelTimer).timer_id == "strategy:x"
    state, _ = step(state, TimerFired(ts=T0 + 50, timer_id="strategy:x"))
    assert "x" not in state.strategy.timers
    state, commands = _do(state, [ClearTimer(name="x")], ts=T0 + 60)
    assert of_type(commands, CancelTimer) == []  # nothing to clear: a no-op


def test_a_strategy_cannot_name_a_kernel_timer() -> None:
    with pytest.raises(ContractError, match="kernel's own namespace"):
        SetTimer(name=MAINTENANCE_TIMER, fire_at=0)
    with pytest.raises(ContractError, match="kernel's own namespace"):
        ClearTimer(name=MAINTENANCE_TIMER)
    # Whatever name it picks, its timer id cannot be the maintenance timer's.
    _, commands = _do(_bot(), [SetTimer(name="maintenance", fire_at=T0 + 5)], ts=T0 + 1)
    assert only(commands, StartTimer).timer_id != MAINTENANCE_TIMER


def test_periodic_strategy_timers_are_re_armed_after_a_restart() -> None:
    state, _ = _do(_bot(), [SetTimer(name="poll", fire_at=T0 + 100, every_ms=1_000)], ts=T0 + 1)
    state, _ = step(state, TimerFired(ts=T0 + 100, timer_id="strategy:poll"))
    assert state.desk.timers["poll"] == (T0 + 1_100, 1_000)
    state, commands = step(state, Started(ts=T0 + 5_000))
    again = [c for c in of_type(commands, StartTimer) if c.timer_id == "strategy:poll"]
    assert [(c.fire_at, c.every_ms) for c in again] == [(T0 + 5_000, 1_000)]


def test_a_bad_period_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="every_ms"):
        _do(_bot(), [SetTimer(name="p", fire_at=T0, every_ms=0)], ts=T0 + 1)


# --- refresh and reports ------------------------------------------------------------------------


def _balance(ts: int, command_id: int | None, equity: str = "10000") -> BalanceReported:
    return BalanceReported(
        ts=ts,
        venue=VENUE,
        asset="USD",
        equity=Decimal(equity),
        available=Decimal(equity),
        command_id=command_id,
    )


def test_a_refresh_is_answered_only_by_a_report_newer_than_the_request() -> None:
    state, commands = _do(_bot(), [Refresh(venue=VENUE, what=RefreshKind.BALANCES)], ts=T0 + 3_002)
    ours = only(commands, RequestBalances)
    # The answer to an older request (a lower command id: taken before ours was sent), applied
    # after ours left: not enough.
    state, _ = step(state, _balance(T0 + 3_003, ours.command_id - 1, "9000"))
    assert not [s for s in state.strategy.stimuli if isinstance(s, Refreshed)]
    balance = state.balance(VENUE)
    assert balance is not None and balance.equity == Decimal(9000)
    state, _ = step(state, _balance(T0 + 3_004, ours.command_id, "9500"))
    [answered] = [s for s in state.strategy.stimuli if isinstance(s, Refreshed)]
    assert answered.what is RefreshKind.BALANCES and answered.asked_ts == T0 + 3_002
    assert answered.report_ts == T0 + 3_004
    # The view already holds the newer report when the strategy is told.
    balance = state.balance(VENUE)
    assert balance is not None and balance.equity == Decimal(9500)
    assert state.desk.refreshes == ()
    # Every balance report reached the strategy too.
    assert [e.equity for e in state.strategy.events if isinstance(e, BalanceReported)][-2:] == [
        Decimal(9000),
        Decimal(9500),
    ]


def test_a_failed_refresh_request_is_said() -> None:
    state, commands = _do(_bot(), [Refresh(venue=VENUE, what=RefreshKind.POSITIONS)], ts=T0 + 1)
    cmd = only(commands, RequestPositions)
    state, _ = step(state, CommandTimedOut(ts=T0 + 9, command_id=cmd.command_id))
    [failed] = state.strategy.stimuli
    assert isinstance(failed, RefreshFailed) and failed.what is RefreshKind.POSITIONS
    assert state.desk.refreshes == ()


def test_a_refresh_of_an_unknown_venue_fails_at_once() -> None:
    state, _ = _do(_bot(), [Refresh(venue="elsewhere", what=RefreshKind.FILLS)], ts=T0 + 1)
    [failed] = state.strategy.stimuli
    assert isinstance(failed, RefreshFailed) and "not configured" in failed.reason


def test_positions_and_funding_reports_reach_the_strategy_and_answer_refreshes() -> None:
    state, commands = _do(_bot(), [Refresh(venue=VENUE, what=RefreshKind.POSITIONS)], ts=T0 + 1)
    cmd = only(commands, RequestPositions)
    state, _ = step(
        state, PositionsReported(ts=T0 + 2, venue=VENUE, positions=(), command_id=cmd.command_id)
    )
    assert isinstance(state.strategy.events[-1], PositionsReported)
    state, commands = _do(state, [Refresh(venue=VENUE, what=RefreshKind.FUNDING)], ts=T0 + 10)
    assert commands == [] or all(not isinstance(c, PlaceOrder) for c in commands)
    stale = FundingRateUpdated(
        ts=T0 + 10, venue=VENUE, symbol=SYMBOL, rate=Decimal("0.0001"), next_funding_ts=T0 + 99
    )
    state, _ = step(state, stale)  # stamped no later than the request: not newer
    assert [s.what for s in state.strategy.stimuli if isinstance(s, Refreshed)] == [
        RefreshKind.POSITIONS
    ]
    state, _ = step(state, attrs.evolve(stale, ts=T0 + 11))
    assert [s.what for s in state.strategy.stimuli if isinstance(s, Refreshed)] == [
        RefreshKind.POSITIONS,
        RefreshKind.FUNDING,
    ]
    assert sum(isinstance(e, FundingRateUpdated) for e in state.strategy.events) == 2


@given(
    asked=st.lists(
        st.tuples(st.sampled_from(list(RefreshKind)), st.integers(0, 20), st.integers(0, 20)),
        max_size=6,
    ),
    reports=st.lists(
        st.tuples(
            st.sampled_from(list(RefreshKind)),
            st.one_of(st.none(), st.integers(0, 20)),
            st.integers(0, 20),
        ),
        max_size=12,
    ),
)
def test_property_a_refresh_is_only_ever_answered_by_a_newer_report(
    asked: list[tuple[RefreshKind, int, int]], reports: list[tuple[RefreshKind, int | None, int]]
) -> None:
    """Whatever reports arrive in whatever order, a pending refresh is answered only by a
    report that answers its own request or a later one, or, pushed, is stamped after it."""
    desk = Desk(
        refreshes=tuple(
            PendingRefresh(
                venue=VENUE,
                what=what,
                asked_ts=ts,
                command_id=None if what is RefreshKind.FUNDING else cid,
            )
            for what, cid, ts in asked
        )
    )
    total = len(desk.refreshes)
    answered = 0
    for what, cid, ts in reports:
        desk, done = desk.answered(VENUE, what, cid, ts)
        answered += len(done)
        for p in done:
            assert p.what is what
            if p.command_id is not None and cid is not None:
                assert cid >= p.command_id
            else:
                assert ts > p.asked_ts
    assert answered + len(desk.refreshes) == total


# --- a strategy that modifies, in a backtest -------------------------------------------------


@attrs.frozen(kw_only=True)
class Chaser:
    """Rests one bid ``gap`` below the mid and moves it (price and size) with the market by
    modify, never by cancel-and-replace."""

    gap: Decimal = Decimal(20)
    cloid: str | None = None
    modifies: int = 0
    refused: int = 0

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]] | None:
        if not view.can_trade(VENUE):
            return None
        order = view.orders.get(self.cloid) if self.cloid is not None else None
        target = (tick.bid - self.gap).quantize(Decimal("0.1"))
        if order is None or not order.is_live:
            return self, [
                Submit(
                    venue=VENUE,
                    symbol=SYMBOL,
                    side=Side.BUY,
                    qty=Decimal("0.002"),
                    price=target,
                    ref="chase",
                )
            ]
        if (
            order.modify_to is None
            and order.status is OrderStatus.OPEN
            and abs(order.price - target) >= 5
        ):
            qty = Decimal("0.003") if order.qty == Decimal("0.002") else Decimal("0.002")
            return attrs.evolve(self, modifies=self.modifies + 1), [
                Modify(cloid=order.cloid, price=target, qty=qty)
            ]
        return None

    def on_changes(
        self, view: State[Self], changes: Sequence[OrderChange]
    ) -> tuple[Self, Sequence[Intent]]:
        new = self
        for change in changes:
            if change.before is None and change.ref == "chase":
                new = attrs.evolve(new, cloid=change.after.cloid)
        return new, ()

    def on_ready(self, view: State[Self], venue: str) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def on_timer(self, view: State[Self], timer_id: str) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def on_event(self, view: State[Self], event: Event) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def on_stimulus(self, view: State[Self], stimulus: Stimulus) -> tuple[Self, Sequence[Intent]]:
        return attrs.evolve(self, refused=self.refused + 1), ()


@pytest.mark.parametrize("reid", [False, True])
def test_a_strategy_that_modifies_runs_in_a_backtest(reid: bool) -> None:
    inst = instrument()
    exchange = SimExchange(
        SimConfig(venue=VENUE, instruments=(inst,), reid_on_modify=reid), start_ts=EPOCH
    )
    state = initial_state(kernel_config(), Chaser(), epoch=EPOCH)
    path = synthetic_path(instrument=inst, ticks=3_000, start_ts=EPOCH, volatility=Decimal("0.001"))
    trace = run_backtest(state, exchange, path)
    assert trace.violations == ()
    final = trace.state.strategy
    assert final.modifies > 10
    modified = [o for o in exchange.orders.values() if o.qty == Decimal("0.003")]
    assert modified, "no modify reached the simulated venue"
    assert trace.state.ledger.fill_count == len(exchange.fills)


def test_a_state_with_refs_timers_refreshes_and_a_modify_out_survives_the_journal_codec() -> None:
    from gridcore.shells import codec

    codec.register(Recorder)
    state, place = _resting(_bot(), ref=("tp", 3))
    state, _ = _do(
        state,
        [
            SetTimer(name="poll", fire_at=T0 + 100, every_ms=50),
            Refresh(venue=VENUE, what=RefreshKind.POSITIONS),
            Modify(cloid=place.cloid, qty=Decimal("0.02")),
        ],
        ts=T0 + 3,
    )
    state = attrs.evolve(state, strategy=Recorder())  # what it recorded is not the point here
    assert state.desk.timers and state.desk.refreshes and state.orders[place.cloid].modify_to
    assert codec.decode_value(codec.encode_value(state)) == state


def test_the_new_api_strategies_satisfy_the_reactive_protocol() -> None:
    """mypy checks the structure; at run time the kernel looks for ``on_stimulus``."""
    from gridcore import ReactiveStrategy

    def accepts(strategy: ReactiveStrategy) -> bool:
        return callable(strategy.on_stimulus)

    assert accepts(Recorder()) and accepts(Chaser())


def _codes(state: State[Recorder]) -> list[str]:
    return [s.code for s in state.strategy.stimuli if isinstance(s, ModifyRefused)]


def test_modify_below_the_filled_size_or_with_the_feed_down_is_refused() -> None:
    state, place = _resting(_bot())
    state, _ = step(
        state,
        OrderPartiallyFilled(
            ts=T0 + 3, fill=fill("f1", Side.BUY, "0.004", "49000", ts=T0 + 3, cloid=place.cloid)
        ),
    )
    assert state.orders[place.cloid].status is OrderStatus.PARTIALLY_FILLED
    state, commands = _do(state, [Modify(cloid=place.cloid, qty=Decimal("0.004"))], ts=T0 + 4)
    assert of_type(commands, ModifyOrder) == [] and _codes(state) == ["bad_qty"]
    state, _ = step(state, FeedDisconnected(ts=T0 + 5, venue=VENUE, reason="test"))
    state, commands = _do(state, [Modify(cloid=place.cloid, price=Decimal("48000"))], ts=T0 + 6)
    assert of_type(commands, ModifyOrder) == [] and _codes(state) == ["bad_qty", "not_ready"]


def test_answers_about_a_modify_nobody_waits_for_change_nothing() -> None:
    state, place = _resting(_bot())
    state, _ = step(
        state,
        ModifyRejected(ts=T0 + 3, venue=VENUE, cloid=place.cloid, reason="late", command_id=99),
    )
    assert state.strategy.stimuli == () and state.orders[place.cloid].status is OrderStatus.OPEN
    state, _ = step(
        state,
        OrderFilled(
            ts=T0 + 4, fill=fill("f1", Side.BUY, "0.01", "49000", ts=T0 + 4, cloid=place.cloid)
        ),
    )
    done = state.orders[place.cloid]
    state, _ = step(
        state,
        OrderModified(
            ts=T0 + 5, venue=VENUE, cloid=place.cloid, price=Decimal(48000), qty=Decimal("0.02")
        ),
    )
    assert state.orders[place.cloid] == done  # a done order is not amended


def test_a_venue_that_amends_to_other_values_than_asked_is_believed() -> None:
    state, place = _resting(_bot())
    state, commands = _do(state, [Modify(cloid=place.cloid, price=Decimal("48000"))], ts=T0 + 3)
    cmd = only(commands, ModifyOrder)
    state, _ = step(
        state,
        OrderModified(
            ts=T0 + 4,
            venue=VENUE,
            cloid=place.cloid,
            price=Decimal("48000.5"),
            qty=Decimal("0.01"),
            command_id=cmd.command_id,
        ),
    )
    order = state.orders[place.cloid]
    assert (order.price, order.modify_to) == (Decimal("48000.5"), None)
    assert state.strategy.changes[-1].after.price == Decimal("48000.5")


def test_a_failed_request_that_is_not_the_refreshs_leaves_it_waiting() -> None:
    state, commands = _do(_bot(), [Refresh(venue=VENUE, what=RefreshKind.BALANCES)], ts=T0 + 1)
    ours = only(commands, RequestBalances)
    state, commands = _do(state, [Refresh(venue=VENUE, what=RefreshKind.POSITIONS)], ts=T0 + 2)
    other = only(commands, RequestPositions)
    state, _ = step(state, CommandFailed(ts=T0 + 3, command_id=other.command_id, reason="x"))
    assert [p.command_id for p in state.desk.refreshes] == [ours.command_id]
    assert [type(s) for s in state.strategy.stimuli] == [RefreshFailed]


def test_a_modify_increase_on_a_stale_balance_is_refused_and_the_balance_asked_for() -> None:
    risk = RiskConfig(
        leverage=Decimal(10),
        max_position=None,
        max_order_notional=None,
        max_drawdown=None,
        max_balance_age_ms=2_000,
    )
    state, place = _resting(_bot(risk))
    later = T0 + 10_000
    state, woke = step(state, QuoteTicked(ts=later, venue=VENUE, symbol=SYMBOL, bid=BID, ask=ASK))
    state, commands = _do(state, [Modify(cloid=place.cloid, qty=Decimal("0.02"))], ts=later + 1)
    assert of_type(commands, ModifyOrder) == [] and _codes(state) == ["stale_balance"]
    # Asked once: by the housekeeping that fell due with the quote, or by the refusal.
    assert len(of_type([*woke, *commands], RequestBalances)) == 1


def test_a_desk_failure_for_another_request_keeps_every_refresh() -> None:
    pending = PendingRefresh(venue=VENUE, what=RefreshKind.FILLS, asked_ts=1, command_id=5)
    desk = Desk(refreshes=(pending,))
    assert desk.failed(6) == (desk, ())
    assert desk.failed(5) == (Desk(), (pending,))


# --- modify in hedge mode --------------------------------------------------------------------


def _hedged(short: str) -> State[Recorder]:
    """A hedge-mode bot holding ``short`` BTC on the SHORT side, limit 0.03 per position key."""
    config = kernel_config(
        risk=RiskConfig(
            leverage=Decimal(10),
            max_position=Decimal("0.03"),
            max_order_notional=None,
            max_drawdown=None,
        ),
    )
    state, _ = synced(
        initial_state(config, Recorder(), epoch=EPOCH),
        ts=T0,
        positions=[
            PositionReport(
                symbol=SYMBOL,
                position_side=PositionSide.SHORT,
                qty=-Decimal(short),
                entry_price=Decimal(50000),
            )
        ],
        fills=[
            fill(
                "f0",
                Side.SELL,
                short,
                "50000",
                ts=T0 - 1,
                venue_order_id="old",
                position_side=PositionSide.SHORT,
            )
        ],
    )
    assert state.venues[VENUE].phase is SyncPhase.SYNCED
    return state


def test_a_hedge_mode_increase_is_gated_on_its_own_position_key() -> None:
    """Growing a SHORT-side entry counts the SHORT position: 0.025 held plus an entry moved
    from 0.001 to 0.01 would be 0.034, over the 0.03 limit of that key."""
    state, place = _resting(
        _hedged("0.025"),
        submit=Submit(
            venue=VENUE,
            symbol=SYMBOL,
            side=Side.SELL,
            qty=Decimal("0.001"),
            price=Decimal(51000),
            position_side=PositionSide.SHORT,
            ref="entry",
        ),
    )
    state, commands = _do(state, [Modify(cloid=place.cloid, qty=Decimal("0.01"))], ts=T0 + 3)
    assert of_type(commands, ModifyOrder) == []
    assert _codes(state) == ["max_position"]
    _, commands = _do(state, [Modify(cloid=place.cloid, qty=Decimal("0.005"))], ts=T0 + 4)
    assert only(commands, ModifyOrder).qty == Decimal("0.005")


def test_a_hedge_mode_close_may_grow_and_move_while_halted() -> None:
    """A buy on the SHORT side closes exposure even without the reduce-only flag: it passes
    the position limit and may still be moved during a halt."""
    state, place = _resting(
        _hedged("0.025"),
        submit=Submit(
            venue=VENUE,
            symbol=SYMBOL,
            side=Side.BUY,
            qty=Decimal("0.005"),
            price=Decimal(49000),
            position_side=PositionSide.SHORT,
            ref="tp",
        ),
    )
    halted = attrs.evolve(
        state,
        books=attrs.evolve(
            state.books, risk=attrs.evolve(state.risk, halted=True, halt_reason="test")
        ),
    )
    _, commands = _do(
        halted,
        [Modify(cloid=place.cloid, price=Decimal(48000), qty=Decimal("0.02"))],
        ts=T0 + 3,
    )
    assert only(commands, ModifyOrder).qty == Decimal("0.02")

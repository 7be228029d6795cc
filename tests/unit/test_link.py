"""The one link model: every fate gives each command exactly one result, the timed deliveries
(backtest, paper venue) and the untimed ones (the state machine) say the same thing, one fault
vocabulary is shared, and per-venue plans fail each venue on its own stream."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

import gridcore.testing
from gridcore.commands import Batch, Command, PlaceOrder
from gridcore.events import (
    CommandFailed,
    CommandTimedOut,
    Event,
    FundingPaid,
    OrderAccepted,
    OrderFilled,
    QuoteTicked,
)
from gridcore.instruments import Instrument, PositionSide, Side, TimeInForce
from gridcore.sim import PROFILES, FaultPlan, SimConfig, SimExchange
from gridcore.sim.faults import ALL_FAULTS, Fate, Fault, FaultInjector
from gridcore.sim.link import Link, carry, is_result, lost_answer
from tests.unit.helpers import EPOCH

D = Decimal
BTC = Instrument(venue="sim", symbol="BTC-PERP", tick_size=D("0.1"), lot_size=D("0.001"))
OTHER = Instrument(venue="other", symbol="BTC-PERP", tick_size=D("0.1"), lot_size=D("0.001"))


def _exchange(inst: Instrument = BTC) -> SimExchange:
    ex = SimExchange(SimConfig(venue=inst.venue, instruments=(inst,)), start_ts=EPOCH)
    ex.on_tick(
        QuoteTicked(ts=EPOCH, venue=inst.venue, symbol=inst.symbol, bid=D(50_000), ask=D("50000.1"))
    )
    return ex


def _place(n: int, price: str, venue: str = "sim") -> PlaceOrder:
    return PlaceOrder(
        command_id=n,
        venue=venue,
        symbol="BTC-PERP",
        cloid=f"c{n}",
        side=Side.BUY,
        position_side=PositionSide.BOTH,
        qty=D("0.01"),
        price=D(price),
        tif=TimeInForce.GTC,
    )


def _command(size: int, crossing: bool, venue: str = "sim") -> Command:
    """One order, or a batch of ``size``; ``crossing`` orders fill at once (stream fills)."""
    price = "50001" if crossing else "49000"
    orders = tuple(_place(10 + k, price, venue) for k in range(size))
    return orders[0] if size == 1 else Batch(command_id=1, venue=venue, commands=orders)


def _members(command: Command) -> list[int]:
    return [c.command_id for c in (command.commands if isinstance(command, Batch) else (command,))]


def _timed(link: Link, command: Command, fate: Fate, now: int) -> list[tuple[int, Event]]:
    """What the backtest and the paper venue get: the deliveries of ``command`` under ``fate``."""
    sent = link.send(command, now, fate)
    out = list(sent.deliveries)
    if sent.arrives_at is not None:
        at = sent.arrives_at
        out += link.answer(sent, command, _exchange().handle(command, at), at)
    return out


@given(
    fate=st.sampled_from(Fate),
    size=st.integers(min_value=1, max_value=3),
    crossing=st.booleans(),
    latency=st.integers(min_value=0, max_value=500),
)
def test_every_fate_gives_each_command_exactly_one_result(
    fate: Fate, size: int, crossing: bool, latency: int
) -> None:
    link = Link(seed=3, latency_ms=latency)
    command = _command(size, crossing)
    timed = _timed(link, command, fate, EPOCH)
    results = Counter(is_result(e) for _, e in timed if is_result(e) is not None)
    assert results == Counter(_members(command))
    plan = FaultPlan()
    for at, event in timed:
        assert at >= EPOCH
        if isinstance(event, CommandTimedOut):
            assert at == EPOCH + plan.timeout_ms  # the shell's timeout, counted from sending
        elif isinstance(event, CommandFailed):
            assert at == EPOCH + latency  # failed before the venue: one crossing
        elif is_result(event) is not None:
            assert at == EPOCH + 2 * latency  # there and back, no delay in this plan
    if fate is Fate.REST_ERROR or fate is Fate.TIMEOUT_LOST:
        assert all(is_result(e) is not None for _, e in timed)  # the venue never saw it
    # The state machine's untimed view says the same, message for message.
    untimed = carry(
        fate,
        command,
        None
        if fate in (Fate.REST_ERROR, Fate.TIMEOUT_LOST)
        else _exchange().handle(command, EPOCH + latency),
        EPOCH,
    )
    assert Counter(type(e) for e in untimed) == Counter(type(e) for _, e in timed)


def test_an_applied_timeout_still_delivers_the_stream_messages_it_caused() -> None:
    command = _command(1, crossing=True)
    timed = _timed(Link(), command, Fate.TIMEOUT_APPLIED, EPOCH)
    kinds = [type(e) for _, e in timed]
    assert CommandTimedOut in kinds and OrderFilled in kinds
    assert OrderAccepted not in kinds  # the answer itself is what was lost


def test_a_lost_message_is_nothing_a_lost_answer_a_timeout_and_statements_are_never_lost() -> None:
    answer = OrderAccepted(ts=EPOCH, venue="sim", cloid="c1", venue_order_id="1", command_id=7)
    assert lost_answer(answer, EPOCH + 9) == CommandTimedOut(ts=EPOCH + 9, command_id=7)
    stream = OrderAccepted(ts=EPOCH, venue="sim", cloid="c1", venue_order_id="1")
    assert lost_answer(stream, EPOCH) is None
    funding = FundingPaid(
        ts=EPOCH,
        venue="sim",
        symbol="BTC-PERP",
        position_side=PositionSide.BOTH,
        amount=D(1),
        payment_id="p1",
    )
    assert lost_answer(funding, EPOCH) == funding
    verdict = CommandFailed(ts=EPOCH, command_id=3, reason="x", not_applied=True)
    assert lost_answer(verdict, EPOCH) == verdict


def test_one_plan_draws_like_the_injector_it_always_was() -> None:
    """A single plan is one draw stream: the link's fates are the injector's, in order."""
    plan = PROFILES["chaos"]
    link = Link(plan, seed=11)
    injector = FaultInjector(plan, 11)
    fates = [link.send(_command(1, False), EPOCH).fate for _ in range(500)]
    assert fates == [injector.command_fate() for _ in range(500)]
    assert Counter(fates)[Fate.DELIVERED] < 500  # faults happened
    assert link.counts() == injector.counts()


def test_per_venue_plans_fail_each_venue_on_its_own_stream() -> None:
    def fates(link: Link, venue: str) -> list[Fate]:
        return [link.send(_command(1, False, venue), EPOCH).fate for _ in range(300)]

    chaos = PROFILES["chaos"]
    alone = Link({"sim": chaos}, seed=5)
    both = Link({"sim": chaos, "other": PROFILES["flaky"]}, seed=5)
    mine = fates(alone, "sim")
    assert set(mine) != {Fate.DELIVERED}
    # Another venue's faults, drawn in between, do not move this venue's.
    interleaved = []
    for _ in range(300):
        interleaved.append(both.send(_command(1, False, "sim"), EPOCH).fate)
        both.send(_command(1, False, "other"), EPOCH)
    assert interleaved == mine
    # A venue without a plan has no faults.
    assert set(fates(Link({"sim": chaos}, seed=5), "other")) == {Fate.DELIVERED}
    assert both.name == "other=flaky,sim=chaos"


def test_a_venue_feed_goes_down_on_its_own_and_comes_back() -> None:
    plan = FaultPlan(name="down", disconnect_ppm=1_000_000, disconnect_ms=5_000)
    link = Link({"sim": plan}, seed=1)
    change = link.tick("sim", EPOCH)
    assert change is not None and not change.up
    assert link.tick("other", EPOCH) is None and link.feed_up("other")
    fill = _exchange().handle(_command(1, crossing=True), EPOCH)
    stream = [e for e in fill if is_result(e) is None]
    assert stream and link.route(stream, EPOCH + 1, "sim") == []  # lost while down
    assert link.tick("sim", EPOCH + 4_999) is None
    back = link.tick("sim", EPOCH + 5_000)
    assert back is not None and back.up
    assert link.counts().disconnects == 1 and link.counts().lost_in_outage == len(stream)
    link.tick("sim", EPOCH + 6_000)
    assert link.heal() == ["sim"] and link.feed_up("sim")


def test_one_fault_vocabulary() -> None:
    assert gridcore.testing.Fault is Fault
    assert gridcore.testing.ALL_FAULTS == ALL_FAULTS == frozenset(Fault)
    assert repr(Fault.REST_ERROR) == "Fault.REST_ERROR"
    assert PROFILES["flaky"].kinds == {
        Fault.DUPLICATE,
        Fault.REORDER,
        Fault.REST_ERROR,
        Fault.TIMEOUT,
    }
    assert PROFILES["none"].kinds == frozenset()
    assert PROFILES["chaos"].kinds == {
        Fault.DROP,
        Fault.DUPLICATE,
        Fault.REORDER,
        Fault.REST_ERROR,
        Fault.TIMEOUT,
        Fault.DISCONNECT,
    }


def test_a_command_for_no_venue_fails_without_being_applied() -> None:
    command = _command(2, crossing=False, venue="nowhere")
    out = Link(latency_ms=7).refused(command, EPOCH, "no simulated venue named 'nowhere'")
    assert [(at, type(e)) for at, e in out] == [(EPOCH + 7, CommandFailed)] * 2

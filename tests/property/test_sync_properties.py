"""Reconciliation properties: a sync never loses an event and never loops.

failure `sync-drops-close`: close events were dropped while the bot was syncing. Failure `resync-loop`: the restore
retriggered itself in a loop. Here a sync interleaved anywhere in a stream of fills changes
nothing in the final position, and however the sync requests fail, the number re-sent stays
within ``max_sync_attempts`` before the core halts and says so.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from gridcore import (
    Command,
    CommandFailed,
    CommandTimedOut,
    Event,
    FeedDisconnected,
    FeedReconnected,
    Halt,
    OrderPartiallyFilled,
    OrderStatus,
    PositionReport,
    PositionSide,
    RequestBalances,
    RequestFills,
    RequestOpenOrders,
    RequestPositions,
    Side,
    Started,
    step,
)
from gridcore.sync import SyncPhase
from tests.property.helpers import split
from tests.unit.helpers import (
    EPOCH,
    SYMBOL,
    VENUE,
    answer_sync,
    feed,
    fill,
    flat,
    kernel_config,
    quote,
    scripted_state,
    submit,
    synced,
)

T0 = EPOCH + 2_000
LOT = Decimal("0.001")
SYNC_REQUESTS = (RequestFills, RequestOpenOrders, RequestPositions, RequestBalances)


@given(
    data=st.data(),
    total_lots=st.integers(min_value=1, max_value=30),
    restart=st.booleans(),
)
def test_a_sync_interleaved_anywhere_leaves_the_final_position_unchanged(
    data: st.DataObject, total_lots: int, restart: bool
) -> None:
    """The design rule "final position is the same with or without a sync interleaved"; the sync
    is a reconnect or a restart, begins before any fill and is answered after any later one."""
    state, _ = synced(scripted_state())
    state, _, place = submit(state, ts=T0, qty=str(Decimal(total_lots) * LOT), price="49000")
    assert place is not None
    parts = data.draw(split(total_lots))
    pieces = [
        fill(f"f{i}", Side.BUY, Decimal(n) * LOT, "49000", ts=T0 + 10 + i, cloid=place.cloid)
        for i, n in enumerate(parts)
    ]
    stream: list[Event] = [OrderPartiallyFilled(ts=p.ts, fill=p) for p in pieces]
    plain, _ = feed(state, stream)

    begin = data.draw(st.integers(min_value=0, max_value=len(stream)), label="begin")
    answer = data.draw(st.integers(min_value=begin, max_value=len(stream)), label="answer")
    synced_state, _ = feed(state, stream[:begin])
    ts = T0 + 10 + begin
    if restart:
        synced_state, sync = step(synced_state, Started(ts=ts))
        synced_state, _ = step(synced_state, quote(ts))
    else:
        synced_state, _ = step(synced_state, FeedDisconnected(ts=ts, venue=VENUE))
        synced_state, sync = step(synced_state, FeedReconnected(ts=ts, venue=VENUE))
    assert synced_state.venues[VENUE].phase is SyncPhase.SYNCING
    synced_state, _ = feed(synced_state, stream[begin:answer])
    executed = sum((p.qty for p in pieces[:answer]), Decimal(0))
    report = answer_sync(
        sync,
        ts=T0 + 10 + answer,
        fills=pieces[:answer],
        positions=[
            PositionReport(
                symbol=SYMBOL,
                position_side=PositionSide.BOTH,
                qty=executed,
                entry_price=Decimal(49000),
            )
        ]
        if executed
        else [],
    )
    synced_state, _ = feed(synced_state, report)
    synced_state, _ = feed(synced_state, stream[answer:])

    assert synced_state.venues[VENUE].phase is SyncPhase.SYNCED
    assert synced_state.ledger.positions == plain.ledger.positions
    assert synced_state.ledger.fill_count == len(pieces)
    assert synced_state.ledger.drift_repairs == 0
    order = synced_state.orders[place.cloid]
    assert order.status is OrderStatus.FILLED
    assert order.filled_qty == place.qty


@given(data=st.data(), max_attempts=st.integers(min_value=0, max_value=4))
def test_sync_requests_stay_bounded_however_they_fail(
    data: st.DataObject, max_attempts: int
) -> None:
    """Failure `resync-loop`: whatever fails (any request, any number of times, failure or timeout),
    at most ``max_sync_attempts`` requests are re-sent; the sync ends synced or halted."""
    state = scripted_state(kernel_config(max_sync_attempts=max_attempts))
    state, commands = step(state, Started(ts=T0))
    state, _ = step(state, quote(T0))
    outstanding: list[Command] = [c for c in flat(commands) if isinstance(c, SYNC_REQUESTS)]
    sent = len(outstanding)
    failures = 0
    ts = T0
    while outstanding and not state.risk.halted:
        request = outstanding.pop(data.draw(st.integers(0, len(outstanding) - 1), label="which"))
        ts += 1
        how = data.draw(st.sampled_from(["answer", "fail", "timeout"]), label="how")
        if how == "answer":
            results: list[Event] = answer_sync([request], ts=ts)
        elif how == "fail":
            results = [CommandFailed(ts=ts, command_id=request.command_id, reason="503")]
        else:
            results = [CommandTimedOut(ts=ts, command_id=request.command_id)]
        failures += how != "answer"
        state, more = feed(state, results)
        again = [c for c in flat(more) if isinstance(c, SYNC_REQUESTS)]
        sent += len(again)
        outstanding += again
        if failures > max_attempts:
            assert any(isinstance(c, Halt) for c in more) or state.risk.halted
        assert sent <= 4 + max_attempts
    if state.risk.halted:
        assert failures == max_attempts + 1
        assert not state.can_trade(VENUE)
    else:
        assert failures <= max_attempts
        assert state.venues[VENUE].phase is SyncPhase.SYNCED
        assert state.can_trade(VENUE)

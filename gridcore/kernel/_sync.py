"""Reconciliation: what the core asks a venue after a start or a reconnect, and how it repairs
what it finds (the phases, venue status and drift computation are in :mod:`gridcore.sync`).

Theory of operation
-------------------
On :class:`~gridcore.events.Started` and on every
:class:`~gridcore.events.FeedReconnected`, a venue enters the ``SYNCING`` phase and the core
requests, in one step: fills since the last fill it has seen (minus an overlap), open orders,
positions and balances (failure `missed-fills-on-reconnect`); beside the round, outside it, the
funding payments since the last one seen (:mod:`gridcore.kernel._funding`). The phase ends when every one of those requests has its
result. Nothing is dropped meanwhile (failure `sync-drops-close`): every event is applied to the order registry
and the ledger as it arrives, and the strategy is told of every order change; only new orders
wait for the phase to end, because they would be decided on a state still being repaired.

Reports apply idempotently: fills are deduplicated by id, open orders and statuses move orders
through the lifecycle table, and an order we track that a complete open-orders report no longer
lists gets its status requested.

Phases
------
any → ``SYNCING`` (only closing orders pass)
    a round starts: ``Started``, a reconnect, a malformed message while synced, a resume,
    the retry once per ``reconcile_ms`` of a round that gave up.
``SYNCING`` stays ``SYNCING``
    a drift is re-checked, or a reconnect adds one fills request to the round.
``SYNCING`` → ``SYNCED`` (trading allowed)
    the last request of the round is answered; the strategy's ``on_ready`` is called.
any → ``UNSYNCED`` (halted)
    a request failed ``max_sync_attempts`` times, or a drift stays unexplained after as many
    re-checks: the core halts (cause ``unreconciled``) and the next cause starts a new round.

A venue whose feed is down takes no order in any phase.

Periodic reconciliation
-----------------------
Every ``reconcile_ms`` (default 60 s) a synced venue is asked again for fills, open orders and
positions, without pausing trading. Fills are asked for since the earlier of the last fill seen
and the time the previous fills request was sent, minus an overlap, so a stream message lost
without a disconnect is still recovered at the next round.

Drift policy
------------
A positions report is compared with the ledger per ``(venue, symbol, position_side)``. A
difference is not repaired at once, because a fill may simply be on its way: the core records
it, asks again for fills and positions, and repairs only when the *same* difference is seen
again with no fill applied in between *and* a fills request sent after the difference was first
seen has been answered (so the missing fill, if the venue has it, has been applied). While a
fills request is out, the core waits for it (and asks for positions again after it); otherwise it
re-checks at most ``max_sync_attempts`` times. A difference still unexplained then is never
adopted on a guess: the core halts, says so, and the next cause starts a fresh round.
Repair adopts the venue's size and entry price (the venue is the truth for what we hold), counts
the repair in the ledger and raises an alert.

A failing request is re-sent at most ``max_sync_attempts`` times per sync (failure `resync-loop`: no
self-retriggering loop); after that the core halts and says so.

Causes and rounds
-----------------
A round starts on ``Started``, on every ``FeedReconnected`` (if a round is already out, one more
fills request joins it, covering the gap the reconnect closes), after a malformed message on a
synced venue, on resume, and once per ``reconcile_ms`` for a venue whose last round gave up.
A feed going down only marks the venue: nothing is sent until it is back.

Orphans and missing orders
--------------------------
A resting order the core does not know on an instrument it trades (failure `orphaned-entries`)
is adopted (tag ``orphan``) and canceled, unless ``cancel_unknown_orders`` is off; one on an
instrument it does not trade is left alone with a notice. An order the core tracks that a
complete open-orders report (an answer to our request, asked after the order was named) no
longer lists gets ``MISSING_FROM_OPEN`` and its status asked. An order the core holds filled
that a report taken after it ended lists as resting is canceled at the venue (filled is final).
Positions on instruments not configured are left alone with a notice.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gridcore.commands import Level
from gridcore.events import (
    FeedDisconnected,
    FeedReconnected,
    FillsReported,
    MessageMalformed,
    OpenOrdersReported,
    PositionsReported,
)
from gridcore.halts import HaltCause
from gridcore.instruments import TimeInForce
from gridcore.kernel import _funding, _intents, _ledger, _orders, _requests, _risk
from gridcore.kernel._model import Inflight, replace
from gridcore.kernel._tx import Tx
from gridcore.ledger import PositionKey
from gridcore.lifecycle import Order, OrderStatus, Trigger
from gridcore.numbers import ZERO
from gridcore.sync import SyncPhase, position_drift


def begin_sync(tx: Tx[Any], venue: str) -> None:
    """Start a reconciliation round: the venue is ``SYNCING`` until every request is answered."""
    vs = tx.venue(venue)
    pending = frozenset(_requests.request(tx, kind, venue) for kind in _requests.REQUEST_KINDS)
    tx.put_venue(
        venue,
        replace(
            vs,
            phase=SyncPhase.SYNCING,
            pending=pending,
            attempts=0,
            syncs=vs.syncs + 1,
            last_reconcile=tx.now,
        ),
    )
    # Funding payments lost with the stream (failure `lost-funding-payment`): asked for beside
    # the round, never part of it (trading does not wait for a venue's funding history).
    _funding.ask(tx, venue)


def sync_result(tx: Tx[Any], venue: str, command_id: int | None) -> None:
    """One request of the round answered; the last one ends the round and the venue is ready."""
    vs = tx.venue(venue)
    if command_id is None or command_id not in vs.pending:
        return
    pending = vs.pending - {command_id}
    tx.put_venue(venue, replace(vs, pending=pending))
    if not pending and vs.phase is SyncPhase.SYNCING:
        # A completed round closes its cause: the next cause gets its own attempts.
        tx.put_venue(venue, replace(vs, pending=pending, phase=SyncPhase.SYNCED, attempts=0))
        tx.notify(Level.INFO, "synced", f"{venue} reconciled")
        _intents.flush_changes(tx)
        _intents.tell_strategy(tx, "on_ready", venue)


def sync_failure(tx: Tx[Any], flight: Inflight, command_id: int, reason: str) -> None:
    """A request of the round failed: send it again, at most ``max_sync_attempts`` times."""
    vs = tx.venue(flight.venue)
    if command_id not in vs.pending:
        return
    if vs.attempts >= tx.config.max_sync_attempts:
        # Give up this round (bounded: failure `resync-loop`) and say so; the venue is UNSYNCED, so
        # the next cause (a reconnect, the periodic round, a resume) starts a fresh one.
        tx.put_venue(flight.venue, replace(vs, pending=frozenset(), phase=SyncPhase.UNSYNCED))
        _risk.halt(
            tx,
            HaltCause.UNRECONCILED,
            f"{flight.venue} could not be reconciled: {flight.kind} request failed "
            f"{vs.attempts + 1} times (last: {reason})",
        )
        return
    again = _requests.request(tx, flight.kind, flight.venue)
    tx.put_venue(
        flight.venue,
        replace(vs, pending=(vs.pending - {command_id}) | {again}, attempts=vs.attempts + 1),
    )


def on_positions(tx: Tx[Any], report: PositionsReported) -> None:
    """Compare a positions report with the ledger: realign entries, apply the drift policy."""
    venue = report.venue
    foreign = [p for p in report.positions if (venue, p.symbol) not in tx.config.by_key]
    if foreign:
        # Not ours to reconcile: comparing them would "repair" a position the bot cannot
        # trade. (A fill on such an instrument is booked and reported as unknown_fill.)
        tx.notify(
            Level.INFO,
            "foreign_position",
            f"{venue}: positions on instruments not configured, left alone: "
            + ", ".join(f"{p.symbol} {p.position_side.value} {p.qty}" for p in foreign),
        )
        report = replace(
            report,
            positions=tuple(p for p in report.positions if (venue, p.symbol) in tx.config.by_key),
        )
    for p in report.positions:
        key = (venue, p.symbol, p.position_side)
        held = tx.ledger.positions.get(key)
        if held is not None and held.qty == p.qty and held.avg_entry != p.entry_price:
            tx.ledger = tx.ledger.realign(key, p.entry_price)
    drift = position_drift(venue, tx.ledger, report, tx.config.by_key)
    vs = tx.venue(venue)
    if not drift:
        if vs.drift:
            # The drift was explained (a fill arrived): its re-checks no longer count.
            attempts = 0 if vs.phase is SyncPhase.SYNCED else vs.attempts
            tx.put_venue(venue, replace(vs, drift={}, attempts=attempts))
        return
    by_key = {(venue, p.symbol, p.position_side): p for p in report.positions}
    unconfirmed: dict[PositionKey, tuple[Decimal, int, int]] = {}
    count = tx.ledger.fill_count
    for key, diff in sorted(drift.items(), key=lambda kv: (kv[0][1], kv[0][2].value)):
        seen = vs.drift.get(key)
        same = seen is not None and seen[0] == diff and seen[1] == count
        # Confirmed: the same difference, no fill applied since, and a fills request sent
        # after it was first seen has been answered (a fill on its way explains a drift
        # until then; adopting early would count that fill twice).
        confirmed = same and seen is not None and vs.fills_checked >= seen[2]
        if confirmed:
            reported = by_key.get(key)
            qty = reported.qty if reported is not None else ZERO
            entry = reported.entry_price if reported is not None else ZERO
            ours = tx.ledger.position(*key).qty
            tx.ledger = tx.ledger.adopt(key, qty, entry)
            tx.notify(
                Level.ALERT,
                "position_drift_repaired",
                f"{key[0]}/{key[1]} {key[2].value}: ledger had {ours}, venue has {qty}; "
                f"adopted the venue's position",
            )
        else:
            first_seen = seen[2] if same and seen is not None else tx.now
            unconfirmed[key] = (diff, count, first_seen)
    if not unconfirmed:
        tx.put_venue(venue, replace(tx.venue(venue), drift={}))
        _risk.check_drawdown(tx)
        return
    vs = tx.venue(venue)
    described = ", ".join(f"{k[1]} {k[2].value} {d}" for k, (d, _, _) in unconfirmed.items())
    in_flight = {f.kind for f in tx.inflight.values() if f.venue == venue}
    extra: set[int] = set()
    attempts = vs.attempts
    if "fills" in in_flight:
        # The fill that explains the difference may be in that answer: wait for it, and
        # make sure a positions request follows it to look again. Not a new attempt.
        if "positions" not in in_flight:
            extra.add(_requests.request(tx, "positions", venue))
    elif attempts < tx.config.max_sync_attempts:
        extra = {_requests.request(tx, "fills", venue), _requests.request(tx, "positions", venue)}
        attempts += 1
    else:
        # Never adopt a difference a fill on its way may explain (that fill would then be
        # counted twice); stop and say so. The next cause starts a fresh round.
        tx.put_venue(
            venue,
            replace(vs, drift=unconfirmed, phase=SyncPhase.UNSYNCED, pending=frozenset()),
        )
        _risk.halt(
            tx,
            HaltCause.UNRECONCILED,
            f"{venue}: positions differ from the ledger by {described} after {attempts} re-checks",
        )
        return
    tx.notify(
        Level.WARNING,
        "position_drift",
        f"{venue}: positions differ from the ledger by {described}; "
        f"re-checking fills and positions",
    )
    tx.put_venue(
        venue,
        replace(
            vs,
            drift=unconfirmed,
            phase=SyncPhase.SYNCING,
            pending=vs.pending | extra,
            attempts=attempts,
        ),
    )


def on_open_orders(tx: Tx[Any], report: OpenOrdersReported, flight: Inflight | None) -> None:
    """Move the orders an open-orders report lists; adopt orphans; ask about missing ones."""
    venue = report.venue
    listed: set[str] = set()
    for reported in report.orders:
        order = tx.find(venue, reported.cloid, reported.venue_order_id)
        if order is None:
            adopt_unknown(tx, venue, reported)
            continue
        listed.add(order.cloid)
        if not order.is_live and report.ts <= order.updated_ts:
            continue  # taken before the order ended: stale, not news
        if reported.filled_qty > order.filled_qty:
            _requests.request_once(tx, "fills", venue)
        if order.status is OrderStatus.FILLED:
            # Filled is final, but the venue rests it (an increase applied whose answer was
            # lost, failure `modify-answer-overtaken`): what is left there goes.
            _orders.cancel_remainder(tx, order, f"listed {reported.filled_qty}/{reported.qty}")
            continue
        _orders.move(tx, order, Trigger.REPORT_OPEN, venue_order_id=reported.venue_order_id)
        if tx.risk.halted:
            _risk.hold_halt(tx, order.cloid)
    if report.command_id is None or flight is None:
        return  # a pushed snapshot: we cannot tell which of our orders it predates
    asked_at = report.command_id
    for cloid, seq in list(tx.live.items()):
        if seq < asked_at and cloid not in listed:
            order = tx.orders[cloid]
            if order.venue == venue:
                _orders.move(tx, order, Trigger.MISSING_FROM_OPEN)


def adopt_unknown(tx: Tx[Any], venue: str, reported: Any) -> None:
    """A resting order the core does not know: adopt and cancel it, or leave a foreign one."""
    known = (venue, reported.symbol) in tx.config.by_key
    if not (known and tx.config.cancel_unknown_orders):
        tx.notify(
            Level.INFO,
            "foreign_order",
            f"{venue}: order {reported.venue_order_id} ({reported.symbol}) is not ours; left alone",
        )
        return
    cloid = reported.cloid or f"{venue}:{reported.venue_order_id}"
    order = Order(
        cloid=cloid,
        venue=venue,
        symbol=reported.symbol,
        side=reported.side,
        position_side=reported.position_side,
        qty=reported.qty,
        price=reported.price,
        tif=TimeInForce.GTC,
        reduce_only=False,
        status=OrderStatus.OPEN,
        created_ts=tx.now,
        updated_ts=tx.now,
        tag="orphan",
        filled_qty=reported.filled_qty,
        venue_order_id=reported.venue_order_id,
        seq=tx.seq,
    )
    tx.put_order(order)
    tx.notify(
        Level.WARNING,
        "orphan_order",
        f"{venue}: resting order {cloid} on {reported.symbol} is unknown to the core; canceling",
    )
    _orders.cancel(tx, cloid)


# --- events ------------------------------------------------------------------------------------


def on_feed_down(tx: Tx[Any], event: FeedDisconnected) -> None:
    """The venue's feed is down: no new orders there until it is back."""
    tx.put_venue(event.venue, replace(tx.venue(event.venue), feed_up=False))
    tx.notify(Level.WARNING, "feed_down", f"{event.venue} feed down: {event.reason}")


def newest_quote(tx: Tx[Any], venue: str) -> int:
    """The time of ``venue``'s newest quote (-1 if none): stored as the venue's
    ``quotes_before`` when its feed comes up, so that no quote seen before the gap prices a new
    order (failure `quote-from-before-a-gap`)."""
    return max((q.ts for (v, _), q in tx.quotes.items() if v == venue), default=-1)


def on_feed_up(tx: Tx[Any], event: FeedReconnected) -> None:
    """The venue's feed is back: reconcile (or widen the round already out); quotes seen
    before the gap no longer price new orders."""
    vs = replace(tx.venue(event.venue), feed_up=True, quotes_before=newest_quote(tx, event.venue))
    tx.put_venue(event.venue, vs)
    if vs.phase is SyncPhase.SYNCING and vs.pending:
        # Already reconciling: the requests out may predate the gap this reconnect
        # closes, so one more fills request joins the round. A reconnect is a cause
        # from outside, so this cannot loop on itself (failure `resync-loop`).
        again = _requests.request(tx, "fills", event.venue)
        tx.put_venue(event.venue, replace(vs, pending=vs.pending | {again}))
        _funding.ask(tx, event.venue)
    else:
        begin_sync(tx, event.venue)


def on_malformed(tx: Tx[Any], event: MessageMalformed) -> None:
    """An unreadable message: count the error and reconcile in case it mattered."""
    tx.notify(
        Level.WARNING,
        "malformed_message",
        f"{event.venue}: unreadable {event.source.value} message ({event.detail}); "
        f"reconciling in case it mattered",
    )
    _risk.error(tx, "malformed message")
    if tx.venue(event.venue).phase is SyncPhase.SYNCED:
        begin_sync(tx, event.venue)


def on_fills(tx: Tx[Any], event: FillsReported, flight: Inflight | None) -> None:
    """A fills report: note how far fills are checked, then book them in time order."""
    if flight is not None:
        vs = tx.venue(event.venue)
        if flight.sent_ts > vs.fills_checked:
            tx.put_venue(event.venue, replace(vs, fills_checked=flight.sent_ts))
    # In time order; within one millisecond, in the venue's own order (the sort is
    # stable), because fill ids need not sort the way the venue executed them.
    for fill in sorted(event.fills, key=lambda f: f.ts):
        _ledger.apply_fill(tx, fill, venue_says_done=False)


def periodic_round(tx: Tx[Any], venue: str) -> None:
    """Once per ``reconcile_ms``: retry a round that gave up, or ask a synced venue again."""
    vs = tx.venue(venue)
    due = tx.config.reconcile_ms and tx.now - vs.last_reconcile >= tx.config.reconcile_ms
    if due and vs.phase is SyncPhase.UNSYNCED and vs.feed_up:
        # A round that gave up is tried again once per period, never in a loop.
        begin_sync(tx, venue)
    elif due and vs.phase is SyncPhase.SYNCED:
        # Background round: catches stream messages lost without a disconnect.
        tx.put_venue(venue, replace(vs, last_reconcile=tx.now))
        _requests.request_once(tx, "fills", venue)
        _requests.request(tx, "open_orders", venue)
        _requests.request(tx, "positions", venue)
        _funding.ask_periodically(tx, venue)

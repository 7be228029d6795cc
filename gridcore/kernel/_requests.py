"""Requests: what the core has asked a venue, how fresh its answers are, and housekeeping.

Rules
-----
* Every order or request command is tracked in flight (``State.inflight``) until its one
  terminal result. A request of one kind (:data:`REQUEST_KINDS`) is sent once per venue while one
  is out (:func:`request_once`), except where a round needs its own answer (:func:`request`).
* Fills are asked for since the earlier of the last fill seen and the previous answered fills
  request, minus ``fill_overlap_ms`` (:func:`fills_since`): dedup makes the overlap harmless,
  and a stream message lost without a disconnect is still recovered.
* **Refresh** (:class:`~gridcore.api.Refresh`): always a new request — one already out may have
  been answered before the decision — answered only by a report newer than the request
  (:class:`~gridcore.api.Refreshed`), failed with the request
  (:class:`~gridcore.api.RefreshFailed`).
  A funding refresh waits for the next funding-rate update.
* **Maintenance** (:func:`maintenance`, run by :func:`gridcore.kernel._intents.housekeeping`
  every ``maintenance_ms`` of data time, in the first step at or after its due time): a status
  request for every order in doubt or cancel-failed with none out (failure `leaked-cancel`), a
  balance request when the last balance is older than half of ``max_balance_age_ms``, the
  periodic reconciliation round (:func:`gridcore.kernel._sync.periodic_round`), the drawdown
  check, and pruning of terminal orders beyond ``terminal_orders_kept`` (down to half of it).
* **The maintenance timer** (:func:`schedule`) is armed only while time with no data matters:
  an order waiting for a status request, or a reconciliation round owed since the last data.
  Idle time costs nothing (failure `idle-time-cost`).
* **Stale balance** (:func:`await_balance`): an order refused for a balance too old asks for a
  fresh one; the report newer than the refusal tells the strategy ``on_ready``.
* **Stale quote** (:func:`await_quote`): an order refused because its instrument has no quote,
  or only one too old or seen before its venue's feed last came up
  (:data:`gridcore.risk.QUOTE_CAUSES`), whatever asked for it (a submit with or without a
  ``ref``, a modify's increase, a flatten), remembers the instrument; the first accepted quote
  for it that the gate would price an order from (:func:`gridcore.risk.quote_refusal`) tells
  the strategy ``on_ready`` for its venue, once (:func:`quote_answered`; failure
  `silent-quote-refusal`). Nothing is asked: venues push quotes. While a quote is awaited, the
  awaited instrument's quotes take the general path (:func:`gridcore.kernel.step` checks the
  quote's instrument against the waits), where :func:`quote_answered` looks at them; every
  other quote keeps the fast paths, so an instrument that never quotes again slows nothing
  else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gridcore.api import PendingRefresh, Refresh, Refreshed, RefreshFailed, RefreshKind
from gridcore.commands import (
    CancelTimer,
    Command,
    RequestBalances,
    RequestFills,
    RequestOpenOrders,
    RequestPositions,
    StartTimer,
)
from gridcore.events import QuoteTicked
from gridcore.instruments import InstrumentKey
from gridcore.kernel import _orders, _risk, _sync
from gridcore.kernel._model import MAINTENANCE_TIMER, CoreConfig, Inflight, replace
from gridcore.kernel._tx import Tx
from gridcore.ledger import Ledger
from gridcore.risk import quote_refusal
from gridcore.sync import SyncPhase, VenueStatus

#: The requests of a reconciliation round, in the order they are sent.
REQUEST_KINDS = ("fills", "open_orders", "positions", "balances")

#: The command of every request kind but fills (which also says since when).
_SNAPSHOT_REQUESTS: Mapping[str, type[RequestOpenOrders | RequestPositions | RequestBalances]] = {
    "open_orders": RequestOpenOrders,
    "positions": RequestPositions,
    "balances": RequestBalances,
}


def fills_since(tx: Tx[Any], venue: str) -> int:
    """Where a fills request starts: before the last fill seen and before the previous
    answered request, by the overlap (see :mod:`gridcore.sync`)."""
    checked = tx.venue(venue).fills_checked
    last = tx.ledger.last_fill_ts.get(venue, tx.base.epoch)
    start = min(last, checked) if checked >= 0 else last
    return max(start - tx.config.fill_overlap_ms, 0)


def request_once(tx: Tx[Any], kind: str, venue: str) -> int | None:
    """Send a ``kind`` request to ``venue`` unless one is out already."""
    for flight in tx.inflight.values():
        if flight.kind == kind and flight.venue == venue:
            return None
    return request(tx, kind, venue)


def request(tx: Tx[Any], kind: str, venue: str) -> int:
    """Send a ``kind`` request to ``venue`` and track it; returns its command id."""
    cid = tx.next_id()
    cmd: Command
    if kind == "fills":
        cmd = RequestFills(command_id=cid, venue=venue, since=fills_since(tx, venue))
    else:
        cmd = _SNAPSHOT_REQUESTS[kind](command_id=cid, venue=venue)
    tx.commands.append(cmd)
    tx.track(cid, Inflight(kind=kind, venue=venue, sent_ts=tx.now))
    return cid


def refresh(tx: Tx[Any], intent: Refresh) -> None:
    """A strategy's refresh: a new request, answered only by a newer report."""
    if intent.venue not in tx.config.venues:
        tx.stimuli.append(
            RefreshFailed(
                venue=intent.venue,
                what=intent.what,
                asked_ts=tx.now,
                reason=f"venue {intent.venue!r} is not configured",
            )
        )
        return
    # Always a new request: one already out may have been answered at the venue before
    # this decision was made, and only a report newer than the request may answer it.
    cid = (
        None if intent.what is RefreshKind.FUNDING else request(tx, intent.what.value, intent.venue)
    )
    pending = PendingRefresh(venue=intent.venue, what=intent.what, asked_ts=tx.now, command_id=cid)
    tx.desk = replace(tx.desk, refreshes=(*tx.desk.refreshes, pending))


def answer_refreshes(
    tx: Tx[Any], venue: str, what: RefreshKind, command_id: int | None, report_ts: int
) -> None:
    """A report of ``what`` arrived: answer the refreshes it is newer than."""
    if not tx.desk.refreshes:
        return
    tx.desk, done = tx.desk.answered(venue, what, command_id, report_ts)
    for p in done:
        tx.stimuli.append(
            Refreshed(venue=venue, what=what, asked_ts=p.asked_ts, report_ts=report_ts)
        )


def _round_owed(tx: Tx[Any]) -> int | None:
    """When the next reconciliation round needs time to pass with no data (see
    :func:`round_owed`)."""
    return round_owed(tx.config, tx.ledger, tx.venues, tx.quotes)


def round_owed(
    config: CoreConfig,
    ledger: Ledger,
    venues: Mapping[str, VenueStatus],
    quotes: Mapping[InstrumentKey, QuoteTicked],
) -> int | None:
    """When the next reconciliation round needs time to pass with no data: a venue that gave
    up and may retry, or a synced venue that saw a quote or a fill since its last round;
    ``None`` when no round is owed."""
    period = config.reconcile_ms
    if not period:
        return None
    owed: int | None = None
    last_fill = ledger.last_fill_ts
    for venue, vs in venues.items():
        since = vs.last_reconcile
        if owed is not None and since + period >= owed:
            continue
        phase = vs.phase
        if phase is SyncPhase.SYNCED:
            # A quote at the round's own time counts: the round ran before it was applied.
            ready = last_fill.get(venue, since) > since
            if not ready:
                for (v, _), q in quotes.items():
                    if v == venue and q.ts >= since:
                        ready = True
                        break
        elif phase is SyncPhase.UNSYNCED:
            ready = vs.feed_up
        else:
            ready = False  # reconciling: the shell answers every request, no timer needed
        if ready:
            owed = since + period
    return owed


def schedule(tx: Tx[Any]) -> None:
    """Arm, move or disarm the maintenance timer at the end of a step.

    Time passing matters only for orders waiting for a status request (the timer fires at the
    next due time) and for a reconciliation round owed since the last data (it fires one round
    period after the round was due, so that while data keeps coming the round runs in a data
    step and the timer never fires). Nothing else needs the clock: every command gets its
    result from the shell, and freshness is asked for when a decision needs it. With nothing
    owed the timer is disarmed, and the first tick that arrives takes the slow path to arm it.
    A quote awaited (:func:`await_quote`) does not move the wake-up time: the hot path sends
    only the awaited instrument's quotes to the slow path, where :func:`quote_answered` looks
    at them.
    """
    b = tx.base.books
    if (
        tx.quotes is tx.base.quotes
        and tx.venues is b.venues
        and tx.ledger is b.ledger
        and tx.attention is b.attention
        and tx.maintenance_due == b.maintenance_due
        and tx.maintenance_timer == b.maintenance_timer
        and tx.wake_at == b.wake_at
        and b.maintenance_due
    ):
        return  # nothing it depends on moved since the step that scheduled it
    due = tx.maintenance_due
    fire: int | None
    if tx.attention:
        fire = due
    else:
        owed = _round_owed(tx)
        fire = None if owed is None else max(due, owed) + tx.config.reconcile_ms
    if fire != tx.maintenance_timer:
        if fire is None:
            tx.commands.append(CancelTimer(command_id=tx.next_id(), timer_id=MAINTENANCE_TIMER))
        else:
            tx.commands.append(
                StartTimer(
                    command_id=tx.next_id(), timer_id=MAINTENANCE_TIMER, fire_at=fire, every_ms=None
                )
            )
        tx.maintenance_timer = fire
    tx.wake_at = due if fire is not None or not tx.config.reconcile_ms else 0


def maintenance(tx: Tx[Any]) -> None:
    # No order stays unresolved without a status request (failure `leaked-cancel`).
    """The housekeeping round (see the module's rules). The wake-up time moves on with the due
    time (:func:`schedule` settles it at the end of the step), so that no view handed out in
    the rest of the step shows one already passed."""
    tx.wake_at = tx.maintenance_due
    for cloid in sorted(tx.attention):
        _orders.request_status(tx, tx.orders[cloid])
    half_age = tx.config.risk.max_balance_age_ms // 2
    for venue in tx.config.venues:
        balance = tx.risk.balances.get(venue)
        if balance is not None and tx.now - balance.ts > half_age:
            request_once(tx, "balances", venue)
        _sync.periodic_round(tx, venue)
    _risk.check_drawdown(tx)
    kept = tx.config.terminal_orders_kept
    if tx.done_orders > kept:
        # Prune down to half the allowance so that pruning (a copy) is rare.
        finished = sorted(
            (o for o in tx.orders.values() if not o.is_live),
            key=lambda o: (o.updated_ts, o.seq),
        )
        tx.drop_orders(o.cloid for o in finished[: tx.done_orders - kept // 2])


def await_balance(tx: Tx[Any], venue: str) -> None:
    """An order was refused for a balance too old to trust (failure `stale-balance`): ask for a
    fresh one and remember to tell the strategy when a report newer than the request arrives,
    so that the decision is made again on it rather than waiting for a heartbeat."""
    request_once(tx, "balances", venue)
    if venue not in tx.balance_waits:
        tx.balance_waits = {**tx.balance_waits, venue: tx.now}


def balance_answered(tx: Tx[Any], venue: str, report_ts: int) -> bool:
    """A balance report arrived: True (and the wait cleared) if it answers a stale refusal."""
    asked = tx.balance_waits.get(venue)
    if asked is None:
        return False
    if report_ts < asked:
        request_once(tx, "balances", venue)  # answered a request sent before the refusal
        return False
    tx.balance_waits = {v: t for v, t in tx.balance_waits.items() if v != venue}
    return True


def refresh_failed(tx: Tx[Any], command_id: int, reason: str) -> None:
    """A request a refresh waits for failed: every refresh it answers fails with it."""
    if tx.desk.refreshes:
        tx.desk, failed = tx.desk.failed(command_id)
        for p in failed:
            tx.stimuli.append(
                RefreshFailed(venue=p.venue, what=p.what, asked_ts=p.asked_ts, reason=reason)
            )


def await_quote(tx: Tx[Any], venue: str, symbol: str) -> None:
    """An order was refused for a cause that passes with the venue's next fresh quote (no quote
    yet, or only a stale one: :data:`gridcore.risk.QUOTE_CAUSES`): remember the instrument, so
    that the quote that lifts the cause tells the strategy ``on_ready`` (failure
    `silent-quote-refusal`). A strategy that submitted without a ``ref`` is told of no refusal,
    and nothing else would make it decide again before its heartbeat."""
    key = (venue, symbol)
    if key not in tx.quote_waits:
        tx.quote_waits = {**tx.quote_waits, key: tx.now}


def quote_answered(tx: Tx[Any], quote: QuoteTicked) -> bool:
    """An accepted quote: True (and the wait cleared) if an order was refused for its
    instrument's quote and the gate would now price one from it (the gate's own rule,
    :func:`gridcore.risk.quote_refusal`: fresh, and seen after the feed came up)."""
    waits = tx.quote_waits
    key = (quote.venue, quote.symbol)
    if key not in waits:
        return False
    instrument = tx.config.by_key.get(key)
    if instrument is None:  # unreachable: only configured instruments are gated or believed
        return False
    quotes_before = tx.venue(quote.venue).quotes_before
    if quote_refusal(tx.config.risk, instrument, quote, tx.now, quotes_before) is not None:
        return False
    tx.quote_waits = {k: t for k, t in waits.items() if k != key}
    return True

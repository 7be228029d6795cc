"""Funding: booking payments, recovering the ones the stream lost, and reporting drift.

Theory of operation
-------------------
A venue pays (or charges) funding on every open position at each funding time. The stream
reports it as :class:`~gridcore.events.FundingPaid`, but a stream can lose it: while the feed
is down, or across a crash between the venue booking it and the shell reading it (failure
`lost-funding-payment`). A lost payment is money the ledger never sees: PnL, the drawdown
breaker and the strategy's funding figures are all wrong by it, silently and for good.

Rules
-----
* **Ask** (:func:`ask`): on ``Started`` and on every ``FeedReconnected`` (with the round of
  :mod:`gridcore.kernel._sync`), and with the periodic reconciliation round once
  ``funding_reconcile_ms`` of data time (an hour) has passed since the last answered funding
  request was sent (:func:`ask_periodically`: venues pay at most hourly, so asking with every
  minute's round costs an event a minute and finds nothing more; failure `idle-time-cost`),
  the core sends one :class:`~gridcore.commands.RequestFunding` per venue (unless one is
  out), since the earlier of the last payment seen on that venue and the time the previous
  answered funding request was sent, minus ``fill_overlap_ms``. It is not part of the sync
  round: trading never waits for it, and its failure never halts.
* **Book** (:func:`on_paid`, :func:`on_report`): a payment is keyed by ``(venue, payment_id)``
  and booked once, however often the stream and the reports repeat it (failure
  `double-counted-funding`). A payment first booked from a report counts as ``recovered``.
* **Check** (:func:`expected`): where the core knows them at the payment's time, it prices
  the payment itself: ``−(position × mark × rate)``, with the rate last published at or before
  the payment, the ledger's position when no fill on that venue was booked after the payment,
  and the last quote when it lies within ``funding_mark_window_ms`` of the payment. A payment
  that differs by more than ``funding_drift_tolerance`` of the expected amount is booked as
  the venue reports it (the venue holds the money) and reported: a ``funding_drift`` warning
  and the venue's ``drifts`` / ``drift_amount`` figures (failure `funding-drift`). Where it
  cannot price the payment, nothing is claimed.
* **Unsupported** (:func:`on_failed`): a venue that refuses the request (``not_applied``: it
  keeps no funding history) is marked and not asked again until the next start, with one
  notice; the refusal is not counted as an error (the breaker must not trip on a capability).
  A request whose outcome is unknown (timeout, transport) counts as an error as any other and
  is retried with the next cause.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gridcore.commands import Level, RequestFunding
from gridcore.events import FundingPaid, FundingRateUpdated, FundingReported
from gridcore.kernel import _intents, _risk
from gridcore.kernel._model import Inflight, replace
from gridcore.kernel._tx import Tx
from gridcore.numbers import CTX
from gridcore.sync import RATES_KEPT, FundingStatus

KIND = "funding"
"""The in-flight kind of a funding request."""


def _put(tx: Tx[Any], venue: str, funding: FundingStatus) -> None:
    tx.put_venue(venue, replace(tx.venue(venue), funding=funding))


def since(tx: Tx[Any], venue: str) -> int:
    """Where a funding request starts (see the module's rules)."""
    f = tx.venue(venue).funding
    last = max(f.last_paid.values(), default=tx.base.epoch)
    start = min(last, f.checked) if f.checked >= 0 else last
    return max(start - tx.config.fill_overlap_ms, 0)


def ask(tx: Tx[Any], venue: str) -> None:
    """Ask ``venue`` for its funding payments since :func:`since`, unless one request is out or
    the venue said it keeps no funding history."""
    if tx.venue(venue).funding.unsupported:
        return
    for flight in tx.inflight.values():
        if flight.kind == KIND and flight.venue == venue:
            return
    cid = tx.next_id()
    tx.commands.append(RequestFunding(command_id=cid, venue=venue, since=since(tx, venue)))
    tx.track(cid, Inflight(kind=KIND, venue=venue, sent_ts=tx.now))


def ask_periodically(tx: Tx[Any], venue: str) -> None:
    """A periodic reconciliation round: :func:`ask` once ``funding_reconcile_ms`` has passed since
    the last answered request was sent (or none was answered yet, so that one that failed is
    asked again with the next round); never when it is 0."""
    period = tx.config.funding_reconcile_ms
    checked = tx.venue(venue).funding.checked
    if period and (checked < 0 or tx.now - checked >= period):
        ask(tx, venue)


def on_started(tx: Tx[Any], venue: str) -> None:
    """A new session: a venue refused before may have learnt (a new adapter); ask again."""
    f = tx.venue(venue).funding
    if f.unsupported:
        _put(tx, venue, replace(f, unsupported=False))


def on_rate(tx: Tx[Any], event: FundingRateUpdated) -> None:
    """Remember the rate (the last :data:`~gridcore.sync.RATES_KEPT` per instrument)."""
    f = tx.venue(event.venue).funding
    kept = f.rates.get(event.symbol, ())
    if kept and kept[-1] == (event.ts, event.rate):
        return
    rates = {**f.rates, event.symbol: (*kept, (event.ts, event.rate))[-RATES_KEPT:]}
    _put(tx, event.venue, replace(f, rates=rates))


def expected(tx: Tx[Any], event: FundingPaid) -> Decimal | None:
    """The payment the core expects for ``event``, or ``None`` where it does not know the
    rate, the position or the mark at the payment's time."""
    venue, symbol = event.venue, event.symbol
    f = tx.venue(venue).funding
    rate = None
    for ts, r in f.rates.get(symbol, ()):
        if ts <= event.ts:
            rate = r
    if rate is None:
        return None
    if tx.ledger.last_fill_ts.get(venue, -1) > event.ts:
        return None  # the position moved after the payment: the core no longer knows it then
    qty = tx.ledger.position(venue, symbol, event.position_side).qty
    quote = tx.quotes.get((venue, symbol))
    if quote is None or abs(quote.ts - event.ts) > tx.config.funding_mark_window_ms:
        return None
    return -CTX.multiply(CTX.multiply(qty, quote.mid), rate)


def on_paid(tx: Tx[Any], event: FundingPaid, *, recovered: bool = False) -> bool:
    """Book a payment once (by venue and payment id), check it against the expected amount,
    and tell the strategy; True when it was new."""
    want = expected(tx, event)
    ledger = tx.ledger.apply_funding(
        event.venue,
        event.symbol,
        event.position_side,
        event.amount,
        event.payment_id,
        event.ts,
    )
    if ledger is None:
        return False
    tx.ledger = ledger
    f = tx.venue(event.venue).funding
    last = f.last_paid.get(event.symbol, -1)
    f = replace(
        f,
        paid=f.paid + 1,
        recovered=f.recovered + (1 if recovered else 0),
        last_paid=f.last_paid if event.ts <= last else {**f.last_paid, event.symbol: event.ts},
    )
    if want is not None:
        f = replace(f, checked_payments=f.checked_payments + 1)
        diff = CTX.subtract(event.amount, want)
        if abs(diff) > CTX.multiply(abs(want), tx.config.funding_drift_tolerance):
            # Booked as reported (the venue holds the money), never absorbed silently
            # (failure `funding-drift`).
            f = replace(f, drifts=f.drifts + 1, drift_amount=CTX.add(f.drift_amount, diff))
            tx.notify(
                Level.WARNING,
                "funding_drift",
                f"{event.venue}/{event.symbol} funding payment {event.payment_id} at "
                f"{event.ts}: venue paid {event.amount}, expected {want} (rate × position × "
                f"mark); booked as the venue reports it",
            )
    _put(tx, event.venue, f)
    _risk.check_drawdown(tx)
    _intents.tell_strategy(tx, "on_event", event)
    return True


def on_report(tx: Tx[Any], report: FundingReported, flight: Inflight | None) -> None:
    """A funding report: note how far payments are checked, then book the new ones in time
    order; payments of another venue are not this report's to book."""
    venue = report.venue
    if flight is not None:
        f = tx.venue(venue).funding
        if flight.sent_ts > f.checked:
            _put(tx, venue, replace(f, checked=flight.sent_ts))
    foreign = [p for p in report.payments if p.venue != venue]
    if foreign:
        tx.notify(
            Level.WARNING,
            "foreign_funding",
            f"{venue}: funding report lists {len(foreign)} payment(s) of another venue; ignored",
        )
    booked = [
        p
        for p in sorted(report.payments, key=lambda p: p.ts)
        if p.venue == venue and on_paid(tx, p, recovered=True)
    ]
    if booked:
        total = sum((p.amount for p in booked), Decimal(0))
        tx.notify(
            Level.WARNING,
            "funding_recovered",
            f"{venue}: {len(booked)} funding payment(s) not seen on the stream, booked from the "
            f"venue's funding history ({total} in total; first {booked[0].payment_id} at "
            f"{booked[0].ts})",
        )


def on_failed(tx: Tx[Any], flight: Inflight, reason: str, *, not_applied: bool) -> None:
    """A funding request failed: a refusal marks the venue unsupported (see the rules)."""
    if not not_applied:
        return  # outcome unknown: counted as an error; the next cause asks again
    f = tx.venue(flight.venue).funding
    _put(tx, flight.venue, replace(f, unsupported=True))
    tx.notify(
        Level.WARNING,
        "funding_history_unavailable",
        f"{flight.venue} gives no funding history ({reason}): funding payments lost on its "
        f"stream cannot be recovered; not asked again this session",
    )

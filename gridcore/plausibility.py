"""Plausibility: what the core refuses to believe from one venue message, in one place.

Theory of operation
-------------------
Every event validates its fields one by one when it is built (:mod:`gridcore.events`), so
``step`` never sees a NaN, a negative price or a time in microseconds. A venue can still send
values that are valid one by one and absurd in context; trading on them would lose money or
freeze the bot. The rules, applied by :func:`gridcore.step`:

* **Clock.** The core's clock (``state.now``) is driven by the shell's own clock: events the
  shell stamps itself (``Started``, ``TimerFired``, operator requests, command results, feed
  status, ``MessageMalformed``) move it forward to their time. An event stamped by a venue
  (quotes, fills, acks, reports, funding) moves it forward only when it is at most
  ``max_clock_lead_ms`` ahead of the clock; one stamped further ahead is applied *as of the
  clock* (its time is replaced by ``now``) and a ``clock_ahead`` notice says so. A single
  far-future timestamp therefore never moves the clock, so quotes, balances and fills that
  follow are not judged stale against a time that never comes.
* **Quotes.** A quote whose bid is above ``max_quote_jump`` × the last accepted ask, or whose
  ask is below the last accepted bid / ``max_quote_jump``, is refused (not stored, the strategy
  does not see it) with an ``implausible_quote`` notice. The market did move when
  ``quote_confirmations`` such quotes in a row agree with each other (each within the jump of
  the one before): the last of them is then accepted with an alert.
* **Fills.** A fill whose price lies more than ``max_fill_deviation`` × away (either way) from
  the reference price (the last mid of its instrument, else the price of the order it fills) is
  not applied to the ledger: the core halts with an alert naming the fill and reconciles. The
  venue's positions report (:mod:`gridcore.sync`) settles the position afterwards.
* **Balances.** A balance report whose equity is below what open orders reserve halts (the
  halt cancels them, which releases the reservations when the cancels are confirmed).
* **Scope.** Events about a venue the core is not configured for are ignored with an
  ``unknown_venue`` notice; positions reported on instruments it is not configured for are left
  out of the drift comparison with a ``foreign_position`` notice.
* **Amendments.** An amendment the core did not ask for (no modify command of its own), or one
  that would leave an order with nothing remaining, is not applied: ``order_anomaly``, and the
  order is canceled (which only reduces exposure).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from gridcore.errors import ConfigError
from gridcore.numbers import CTX

if TYPE_CHECKING:
    from gridcore.events import QuoteTicked

__all__ = ["Plausibility", "fill_implausible", "left_and_jumped", "quote_jumped"]


@attrs.frozen(kw_only=True)
class Plausibility:
    """The limits of :mod:`gridcore.plausibility` (see its theory of operation).

    ``max_clock_lead_ms``: how far ahead of the core's clock a venue-stamped event may move it.
    ``max_quote_jump``: the factor by which a quote may move from the last accepted one.
    ``quote_confirmations``: how many agreeing quotes in a row make a jump believed.
    ``max_fill_deviation``: the factor by which a fill price may differ from its reference.
    """

    max_clock_lead_ms: int = 300_000
    max_quote_jump: Decimal = Decimal(10)
    quote_confirmations: int = 3
    max_fill_deviation: Decimal = Decimal(10)

    def __attrs_post_init__(self) -> None:
        if type(self.max_clock_lead_ms) is not int or self.max_clock_lead_ms < 1:
            raise ConfigError("plausibility.max_clock_lead_ms", "must be an integer >= 1 (ms)")
        for name in ("max_quote_jump", "max_fill_deviation"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 1:
                raise ConfigError(
                    f"plausibility.{name}", f"must be a finite factor > 1, got {value}"
                )
        if type(self.quote_confirmations) is not int or self.quote_confirmations < 1:
            raise ConfigError("plausibility.quote_confirmations", "must be an integer >= 1")


def quote_jumped(
    last_bid: Decimal, last_ask: Decimal, bid: Decimal, ask: Decimal, factor: Decimal
) -> bool:
    """True when a quote ``bid``/``ask`` lies more than ``factor`` × away from the last one."""
    return bid > CTX.multiply(last_ask, factor) or CTX.multiply(ask, factor) < last_bid


def left_and_jumped(last: QuoteTicked, quote: QuoteTicked, factor: Decimal) -> bool:
    """True when ``quote`` left the spread of ``last`` and :func:`quote_jumped` says it jumped,
    with one product instead of two (the reducer's hot path runs it for every quote). A quote
    that moved up (its bid above the last ask) cannot lie ``factor`` × below the last one, nor
    one that moved down above it: every quote has ``0 < bid <= ask`` (checked when built),
    ``factor > 1`` (checked at load), and a rounded product stays on its side of the operand."""
    bid = quote.bid
    if bid > last.ask:
        return bid > CTX.multiply(last.ask, factor)
    ask = quote.ask
    return ask < last.bid and CTX.multiply(ask, factor) < last.bid


def fill_implausible(price: Decimal, reference: Decimal | None, factor: Decimal) -> bool:
    """True when ``price`` is more than ``factor`` × away from ``reference`` (either way); never
    when there is no reference."""
    if reference is None or reference <= 0:
        return False
    return price > CTX.multiply(reference, factor) or CTX.multiply(price, factor) < reference

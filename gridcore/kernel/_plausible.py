"""What one venue message is believed (the limits are in :mod:`gridcore.plausibility`).

Rules
-----
* Events about a venue the core does not trade are ignored with a notice (:func:`known_venue`).
* A quote for an instrument that is not configured is ignored; a quote more than
  ``max_quote_jump`` from the last accepted one is refused until ``quote_confirmations``
  agreeing quotes in a row confirm the move (:func:`believe_quote`). The tick hot path in
  :mod:`gridcore.kernel._reducer` only calls it when a quote left the last spread.
* A venue-stamped event too far ahead of the core's clock is applied as of the clock
  (:func:`gridcore.kernel._reducer.step`); an implausible fill is the ledger's rule
  (:mod:`gridcore.kernel._ledger`).
"""

from __future__ import annotations

from typing import Any

from gridcore.commands import Level
from gridcore.events import QuoteTicked
from gridcore.kernel._tx import Tx
from gridcore.plausibility import quote_jumped


def believe_quote(tx: Tx[Any], tick: QuoteTicked) -> bool:
    """Whether to store ``tick`` and show it to the strategy (:mod:`gridcore.plausibility`)."""
    key = (tick.venue, tick.symbol)
    if key not in tx.config.by_key:
        tx.notify(
            Level.INFO,
            "unknown_instrument",
            f"quote for {tick.venue}/{tick.symbol}, which is not configured; ignored",
        )
        return False
    rules = tx.config.plausibility
    suspects = tx.suspect_quotes
    last = tx.quotes.get(key)
    if last is None or not quote_jumped(
        last.bid, last.ask, tick.bid, tick.ask, rules.max_quote_jump
    ):
        return True
    seen = suspects.get(key)
    agreeing = (
        seen is not None
        and seen[2] is last  # in a row: nothing accepted since
        and not quote_jumped(seen[0].bid, seen[0].ask, tick.bid, tick.ask, rules.max_quote_jump)
    )
    count = seen[1] + 1 if seen is not None and agreeing else 1
    if count >= rules.quote_confirmations:
        tx.suspect_quotes = {k: v for k, v in suspects.items() if k != key}
        tx.notify(
            Level.ALERT,
            "quote_jump_accepted",
            f"{tick.venue}/{tick.symbol}: {count} quotes in a row agree on {tick.bid}/"
            f"{tick.ask}, more than {rules.max_quote_jump}x from the last accepted "
            f"{last.bid}/{last.ask}; the market moved, accepted",
        )
        return True
    tx.suspect_quotes = {**suspects, key: (tick, count, last)}
    tx.notify(
        Level.WARNING,
        "implausible_quote",
        f"{tick.venue}/{tick.symbol}: quote {tick.bid}/{tick.ask} at {tick.ts} is more than "
        f"{rules.max_quote_jump}x from the last accepted {last.bid}/{last.ask}; refused "
        f"({count} of {rules.quote_confirmations} needed to believe it)",
    )
    return False


def known_venue(tx: Tx[Any], venue: str, what: str) -> bool:
    """True for a configured venue; otherwise say the event is ignored."""
    if venue in tx.config.venues:
        return True
    tx.notify(
        Level.WARNING,
        "unknown_venue",
        f"{what} from venue {venue!r}, which is not configured "
        f"({', '.join(tx.config.venues)}); ignored",
    )
    return False

"""Reconciliation's values: a venue's phase and status, and the drift between a positions
report and the ledger.

The rules that use them (when a round starts and ends, the drift policy, orphans, periodic
rounds) are documented and coded together in :mod:`gridcore.kernel._sync`; this module holds
only what the invariants, the journal and the shells also read.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal

import attrs

from gridcore._enum import CoreEnum
from gridcore.events import PositionsReported
from gridcore.ledger import Ledger, PositionKey

__all__ = ["FundingStatus", "SyncPhase", "VenueStatus", "position_drift"]


class SyncPhase(CoreEnum):
    """Where a venue stands in reconciliation."""

    UNSYNCED = "unsynced"  # never reconciled since the core started
    SYNCING = "syncing"  # requests outstanding; no new orders
    SYNCED = "synced"  # reconciled; trading allowed


#: How many recent funding rates are kept per instrument (to price a payment recovered late).
RATES_KEPT = 8


@attrs.frozen(kw_only=True)
class FundingStatus:
    """Per-venue funding reconciliation (the rules are in :mod:`gridcore.kernel._funding`).

    ``checked`` is when the last answered funding request was sent (every payment before it is
    known); ``unsupported`` is set when the venue refused the request (it keeps no funding
    history): it is not asked again until the next start. ``rates`` holds, per symbol, the last
    :data:`RATES_KEPT` rates seen as ``(ts, rate)``; ``last_paid`` the newest payment time per
    symbol. ``paid`` counts payments booked, ``recovered`` those booked from a funding report
    (lost on the stream), ``checked_payments`` those compared with the expected amount,
    ``drifts`` those that differed by more than the tolerance and ``drift_amount`` the sum of
    (reported − expected) over them, in quote.
    """

    checked: int = -1
    unsupported: bool = False
    rates: Mapping[str, tuple[tuple[int, Decimal], ...]] = attrs.field(factory=dict)
    last_paid: Mapping[str, int] = attrs.field(factory=dict)
    paid: int = 0
    recovered: int = 0
    checked_payments: int = 0
    drifts: int = 0
    drift_amount: Decimal = Decimal(0)


@attrs.frozen(kw_only=True)
class VenueStatus:
    """Per-venue connection and reconciliation state.

    ``pending`` holds the command ids of outstanding sync requests; ``attempts`` counts re-sent
    requests and drift re-checks in the current sync; ``drift`` maps each position key with an
    unconfirmed difference to ``(difference, ledger fill count, time first seen)``. ``fills_checked`` is
    when the last answered fills request was sent (every fill before it is known);
    ``last_reconcile`` when the last reconciliation round started; ``funding`` the venue's
    funding reconciliation (:class:`FundingStatus`). ``quotes_before`` is the time of the
    venue's newest quote when its feed last came up (the run's start or a reconnect): a quote
    no newer was seen before that gap and never prices a new order (failure
    `quote-from-before-a-gap`). It is venue time, so a skew between the venue's clock and
    ours never refuses a fresh quote.
    """

    feed_up: bool = False
    phase: SyncPhase = SyncPhase.UNSYNCED
    pending: frozenset[int] = frozenset()
    attempts: int = 0
    drift: Mapping[PositionKey, tuple[Decimal, int, int]] = attrs.field(factory=dict)
    syncs: int = 0
    fills_checked: int = -1
    last_reconcile: int = -1
    funding: FundingStatus = FundingStatus()
    quotes_before: int = -1


def position_drift(
    venue: str,
    ledger: Ledger,
    report: PositionsReported,
    instruments: Collection[tuple[str, str]] | None = None,
) -> dict[PositionKey, Decimal]:
    """Venue size minus ledger size for every position of ``venue`` that differs; only on
    ``instruments`` (``(venue, symbol)`` keys) when given, so that a position on an instrument
    the bot does not trade is never "repaired"."""
    reported = {(venue, p.symbol, p.position_side): p.qty for p in report.positions}
    keys = set(reported)
    keys.update(k for k, p in ledger.positions.items() if k[0] == venue and p.qty)
    if instruments is not None:
        keys = {k for k in keys if (k[0], k[1]) in instruments}
    drift: dict[PositionKey, Decimal] = {}
    for key in keys:
        ours = ledger.positions[key].qty if key in ledger.positions else Decimal(0)
        theirs = reported.get(key, Decimal(0))
        if theirs != ours:
            drift[key] = theirs - ours
    return drift

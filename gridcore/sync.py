"""Reconciliation: what the core asks a venue after a start or a reconnect, and how it repairs
what it finds.

Theory of operation
-------------------
On :class:`~gridcore.events.Started` and on every
:class:`~gridcore.events.FeedReconnected`, a venue enters the ``SYNCING`` phase and the core
requests, in one step: fills since the last fill it has seen (minus an overlap), open orders,
positions and balances (failure `missed-fills-on-reconnect`). The phase ends when every one of those requests has its
result. Nothing is dropped meanwhile (failure `sync-drops-close`): every event is applied to the order registry
and the ledger as it arrives, and the strategy is told of every order change; only new orders
wait for the phase to end, because they would be decided on a state still being repaired.

Reports apply idempotently: fills are deduplicated by id, open orders and statuses move orders
through the lifecycle table, and an order we track that a complete open-orders report no longer
lists gets its status requested.

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
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal

import attrs

from gridcore._enum import CoreEnum
from gridcore.events import PositionsReported
from gridcore.ledger import Ledger, PositionKey

__all__ = ["SyncPhase", "VenueStatus", "position_drift"]


class SyncPhase(CoreEnum):
    """Where a venue stands in reconciliation."""

    UNSYNCED = "unsynced"  # never reconciled since the core started
    SYNCING = "syncing"  # requests outstanding; no new orders
    SYNCED = "synced"  # reconciled; trading allowed


@attrs.frozen(kw_only=True)
class VenueStatus:
    """Per-venue connection and reconciliation state.

    ``pending`` holds the command ids of outstanding sync requests; ``attempts`` counts re-sent
    requests and drift re-checks in the current sync; ``drift`` maps each position key with an
    unconfirmed difference to ``(difference, ledger fill count, time first seen)``. ``fills_checked`` is
    when the last answered fills request was sent (every fill before it is known);
    ``last_reconcile`` when the last reconciliation round started.
    """

    feed_up: bool = False
    phase: SyncPhase = SyncPhase.UNSYNCED
    pending: frozenset[int] = frozenset()
    attempts: int = 0
    drift: Mapping[PositionKey, tuple[Decimal, int, int]] = attrs.field(factory=dict)
    syncs: int = 0
    fills_checked: int = -1
    last_reconcile: int = -1


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

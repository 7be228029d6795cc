"""The ledger: positions, average entry, realized PnL, fees and funding, built from fills.

Fills are applied once each, keyed by the venue's fill id (seed 004 C-5), so a fill seen on the
stream, again in a REST report after a reconnect, and a third time in a journal replay counts
once. Partial fills add up exactly; there is no threshold anywhere.

Dedup policy (bounded memory)
-----------------------------
The ledger remembers the ids of the most recent fills in a :class:`FillWindow`: generations of
``generation_size`` ids, at most ``max_generations`` of them (16,384 ids by default). When the
oldest generation is dropped, the *watermark* becomes the newest fill timestamp it held, and from
then on any fill at or before the watermark is treated as already applied. Reconciliation asks
the venue for fills since the last fill seen, which is always well after the watermark, so the
window only has to cover the overlap of a stream and a REST answer. A genuinely new fill older
than the watermark (more than ~16k fills late) is not applied; the positions report that follows
every reconciliation detects the drift and repairs it (see :mod:`gridcore.sync`).

Positions are kept per ``(venue, symbol, position_side)`` with a signed quantity (short < 0),
so one-way and hedge mode share one code path. Average entry changes only when a position
grows (a 40-digit weighted average); reducing realizes PnL against it, rounded to
:data:`~gridcore.numbers.MONEY_QUANTUM` (1e-24 quote) so that balances add up exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import attrs

from gridcore.events import Fill
from gridcore.instruments import PositionSide
from gridcore.numbers import CTX, MONEY_QUANTUM, ZERO

__all__ = ["FillWindow", "Ledger", "Position", "PositionKey"]

#: ``(venue, symbol, position_side)``.
PositionKey = tuple[str, str, PositionSide]


@attrs.frozen(kw_only=True)
class Position:
    """One position: signed ``qty`` (base units), ``avg_entry`` (quote per base), and the money
    it has made: ``realized`` (trading PnL), ``fees`` (paid, positive), ``funding`` (received,
    positive), all in quote."""

    qty: Decimal = ZERO
    avg_entry: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO

    def unrealized(self, mark: Decimal) -> Decimal:
        """PnL of the open quantity at ``mark``."""
        if not self.qty:
            return ZERO
        return CTX.multiply(self.qty, CTX.subtract(mark, self.avg_entry))

    @property
    def net(self) -> Decimal:
        """Realized PnL minus fees plus funding."""
        return CTX.add(CTX.subtract(self.realized, self.fees), self.funding)

    def apply(self, signed_qty: Decimal, price: Decimal, fee: Decimal) -> Position:
        """The position after a fill of ``signed_qty`` (buy > 0) at ``price``."""
        q = self.qty
        new_q = CTX.add(q, signed_qty)
        fees = CTX.add(self.fees, fee)
        if not q or (q > 0) == (signed_qty > 0):
            # Growing (or opening): new average entry, weighted by size.
            cost = CTX.add(
                CTX.multiply(abs(q), self.avg_entry), CTX.multiply(abs(signed_qty), price)
            )
            avg = CTX.divide(cost, abs(new_q))
            return Position(
                qty=new_q, avg_entry=avg, realized=self.realized, fees=fees, funding=self.funding
            )
        closed = min(abs(signed_qty), abs(q))
        direction = 1 if q > 0 else -1
        pnl = CTX.multiply(closed, CTX.subtract(price, self.avg_entry)).quantize(
            MONEY_QUANTUM, context=CTX
        )
        realized = CTX.add(self.realized, pnl if direction > 0 else -pnl)
        if not new_q:
            avg = ZERO
        elif (new_q > 0) == (q > 0):
            avg = self.avg_entry
        else:
            avg = price  # flipped through zero: the remainder opened at this price
        return Position(
            qty=new_q, avg_entry=avg, realized=realized, fees=fees, funding=self.funding
        )


@attrs.frozen(kw_only=True)
class FillWindow:
    """Which fill ids were applied: a bounded window plus a watermark (see the module doc)."""

    current: frozenset[str] = frozenset()
    current_max_ts: int = -1
    sealed: tuple[tuple[int, frozenset[str]], ...] = ()
    watermark: int = -1
    generation_size: int = 256
    max_generations: int = 64

    def __contains__(self, fill: object) -> bool:
        if not isinstance(fill, tuple):
            return False
        fill_id, ts = fill
        if ts <= self.watermark or fill_id in self.current:
            return True
        return any(fill_id in ids for _, ids in self.sealed)

    def seen(self, fill_id: str, ts: int) -> bool:
        """True when the fill was applied already (or is older than the watermark)."""
        return (fill_id, ts) in self

    def add(self, fill_id: str, ts: int) -> FillWindow:
        """Remember ``fill_id``; seals and drops generations to stay bounded."""
        current, current_max, sealed, watermark = (
            self.current,
            self.current_max_ts,
            self.sealed,
            self.watermark,
        )
        if len(current) >= self.generation_size:
            sealed = (*sealed, (current_max, current))
            current, current_max = frozenset(), -1
            if len(sealed) > self.max_generations:
                dropped_max, _ = sealed[0]
                sealed = sealed[1:]
                watermark = max(watermark, dropped_max)
        return FillWindow(
            current=current | {fill_id},
            current_max_ts=max(current_max, ts),
            sealed=sealed,
            watermark=watermark,
            generation_size=self.generation_size,
            max_generations=self.max_generations,
        )

    def __len__(self) -> int:
        return len(self.current) + sum(len(ids) for _, ids in self.sealed)


@attrs.frozen(kw_only=True)
class Ledger:
    """Positions and money, folded from fills and funding payments.

    ``last_fill_ts`` maps each venue to the newest fill time applied: reconciliation asks the
    venue for fills since then. ``drift_repairs`` counts positions overwritten with the venue's
    truth.
    """

    positions: Mapping[PositionKey, Position] = attrs.field(factory=dict)
    seen: FillWindow = FillWindow()
    last_fill_ts: Mapping[str, int] = attrs.field(factory=dict)
    fill_count: int = 0
    drift_repairs: int = 0

    def position(self, venue: str, symbol: str, side: PositionSide = PositionSide.BOTH) -> Position:
        """The position on one ``(venue, symbol, side)``, flat when never traded."""
        return self.positions.get((venue, symbol, side), _FLAT)

    def has_seen(self, fill: Fill) -> bool:
        """True when ``fill`` was applied already."""
        return self.seen.seen(fill.fill_id, fill.ts)

    def apply_fill(self, fill: Fill) -> Ledger | None:
        """The ledger after ``fill``, or ``None`` when it was applied already."""
        if self.seen.seen(fill.fill_id, fill.ts):
            return None
        key = (fill.venue, fill.symbol, fill.position_side)
        signed = fill.qty if fill.side.sign > 0 else -fill.qty
        pos = self.positions.get(key, _FLAT).apply(signed, fill.price, fill.fee)
        last = self.last_fill_ts.get(fill.venue, -1)
        return Ledger(
            positions={**self.positions, key: pos},
            seen=self.seen.add(fill.fill_id, fill.ts),
            last_fill_ts=self.last_fill_ts
            if fill.ts <= last
            else {**self.last_fill_ts, fill.venue: fill.ts},
            fill_count=self.fill_count + 1,
            drift_repairs=self.drift_repairs,
        )

    def apply_funding(
        self, venue: str, symbol: str, side: PositionSide, amount: Decimal, payment_id: str, ts: int
    ) -> Ledger | None:
        """The ledger after a funding payment, or ``None`` when it was booked already."""
        dedup_id = f"funding:{payment_id}"
        if self.seen.seen(dedup_id, ts):
            return None
        key = (venue, symbol, side)
        pos = self.positions.get(key, _FLAT)
        pos = attrs.evolve(pos, funding=CTX.add(pos.funding, amount))
        return attrs.evolve(
            self, positions={**self.positions, key: pos}, seen=self.seen.add(dedup_id, ts)
        )

    def adopt(self, key: PositionKey, qty: Decimal, entry: Decimal) -> Ledger:
        """Overwrite one position's size and entry with the venue's (drift repair)."""
        pos = self.positions.get(key, _FLAT)
        fixed = attrs.evolve(pos, qty=qty, avg_entry=entry if qty else ZERO)
        return attrs.evolve(
            self, positions={**self.positions, key: fixed}, drift_repairs=self.drift_repairs + 1
        )

    def realign(self, key: PositionKey, entry: Decimal) -> Ledger:
        """Take the venue's average entry for a position whose size already agrees, moving
        realized PnL by ``qty × (entry − old entry)`` so that total PnL is unchanged.

        With average-cost accounting the split between realized and unrealized PnL depends on
        the order fills were applied; a fill recovered after later ones (seed 004 C-3) is
        applied in a different order than the venue's, and this puts the split back where the
        venue has it.
        """
        pos = self.positions.get(key, _FLAT)
        if not pos.qty or pos.avg_entry == entry:
            return self
        shift = CTX.multiply(pos.qty, CTX.subtract(entry, pos.avg_entry))
        realized = CTX.add(pos.realized, shift).quantize(MONEY_QUANTUM, context=CTX)
        fixed = attrs.evolve(pos, avg_entry=entry, realized=realized)
        return attrs.evolve(self, positions={**self.positions, key: fixed})

    def totals(self) -> Position:
        """Sum of realized, fees and funding over every position (qty and entry left at zero)."""
        realized = fees = funding = ZERO
        for p in self.positions.values():
            realized = CTX.add(realized, p.realized)
            fees = CTX.add(fees, p.fees)
            funding = CTX.add(funding, p.funding)
        return Position(realized=realized, fees=fees, funding=funding)


_FLAT = Position()

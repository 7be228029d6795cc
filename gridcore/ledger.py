"""The ledger: positions, average entry, realized PnL, fees and funding, built from fills.

Fills are applied once each, keyed by the venue's fill id (failure `double-counted-fill`), so a fill seen on the
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
so one-way and hedge mode share one code path.

Money of a position (realized, fees, funding, cost) is in the settlement currency of its
instrument (:attr:`gridcore.instruments.Instrument.settlement`); totals over positions are taken
per currency (:meth:`Ledger.totals_by_currency`), never across currencies.

Money is exact (see :mod:`gridcore.numbers`): each position keeps its exact cost basis, so
realized plus unrealized PnL never carries a rounding. Average entry changes only when a
position grows and is the cost basis divided by the size, rounded half-even to
:data:`~gridcore.numbers.ENTRY_EXTRA_PLACES` decimals beyond the fill prices; a partial close
realizes ``closed × (price − entry)`` (exact given the entry) and a close to zero realizes the
exact remainder, so a round trip books exactly its cash flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import attrs

from gridcore.events import Fill
from gridcore.instruments import PositionSide
from gridcore.numbers import CTX, ENTRY_EXTRA_PLACES, ZERO, quantize_quotient

__all__ = ["FillWindow", "Ledger", "Position", "PositionKey"]

#: ``(venue, symbol, position_side)``.
PositionKey = tuple[str, str, PositionSide]


@attrs.frozen(kw_only=True)
class Position:
    """One position: signed ``qty`` (base units), ``avg_entry`` (quote per base), ``cost`` (the
    exact cost basis of the open quantity, signed like ``qty``: the sum of ``qty × price`` of the
    fills that opened it, less what closes took out), and the money it has made: ``realized``
    (trading PnL), ``fees`` (paid, positive), ``funding`` (received, positive), all in quote.

    ``cost`` is exact; ``avg_entry`` is ``cost ÷ qty`` rounded by the rule of
    :mod:`gridcore.numbers` (:data:`~gridcore.numbers.ENTRY_EXTRA_PLACES` beyond the prices).
    Realized plus unrealized PnL is therefore exact at any mark."""

    qty: Decimal = ZERO
    avg_entry: Decimal = ZERO
    cost: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO

    def unrealized(self, mark: Decimal) -> Decimal:
        """PnL of the open quantity at ``mark``: ``qty × mark − cost`` (exact)."""
        if not self.qty:
            return ZERO
        return CTX.subtract(CTX.multiply(self.qty, mark), self.cost)

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
            # Growing (or opening): the cost basis adds the fill's value exactly; the average
            # entry is derived from it by the one named rounding.
            cost = CTX.add(self.cost, CTX.multiply(signed_qty, price))
            exponent = _entry_exponent(price)
            if q:
                exponent = min(exponent, _exponent(self.avg_entry))
            return Position(
                qty=new_q,
                avg_entry=quantize_quotient(cost, new_q, exponent),
                cost=cost,
                realized=self.realized,
                fees=fees,
                funding=self.funding,
            )
        closed = min(abs(signed_qty), abs(q))
        if closed == abs(q):
            # Closed to zero (or through it): book the exact remainder of the cost basis, so a
            # round trip realizes exactly its cash flow whatever the entry's rounding did.
            cash = CTX.multiply(closed, price) if q > 0 else -CTX.multiply(closed, price)
            realized = CTX.add(self.realized, CTX.subtract(cash, self.cost))
            if not new_q:
                avg, cost = ZERO, ZERO
            else:  # flipped through zero: the remainder opened at this price
                cost = CTX.multiply(new_q, price)
                avg = price.quantize(Decimal(1).scaleb(_entry_exponent(price)), context=CTX)
        else:
            # Partial close: realize against the (rounded) entry, a product of finite decimals,
            # and take the same amount out of the cost basis.
            basis = CTX.multiply(closed, self.avg_entry)
            pnl = CTX.subtract(CTX.multiply(closed, price), basis)
            realized = CTX.add(self.realized, pnl if q > 0 else -pnl)
            cost = CTX.subtract(self.cost, basis if q > 0 else -basis)
            avg = self.avg_entry
        return Position(
            qty=new_q, avg_entry=avg, cost=cost, realized=realized, fees=fees, funding=self.funding
        )

    def with_entry(self, qty: Decimal, entry: Decimal) -> Position:
        """This position with size ``qty`` held at ``entry`` (the venue's figures); the cost
        basis becomes ``qty × entry`` exactly."""
        if not qty:
            return attrs.evolve(self, qty=qty, avg_entry=ZERO, cost=ZERO)
        return attrs.evolve(self, qty=qty, avg_entry=entry, cost=CTX.multiply(qty, entry))


def _exponent(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # prices and entries are finite (checked at the boundary)
    return exponent


def _entry_exponent(price: Decimal) -> int:
    # A price written with a positive exponent ("5E+4") still gets decimals below the unit.
    return min(_exponent(price), 0) - ENTRY_EXTRA_PLACES


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
        return self.seen(fill_id, ts)

    def seen(self, fill_id: str, ts: int) -> bool:
        """True when the fill was applied already (or is older than the watermark)."""
        if ts <= self.watermark or fill_id in self.current:
            return True
        # A plain loop, not any() over a generator: this runs on every fill, over up to
        # max_generations sealed sets.
        for _, ids in self.sealed:  # noqa: SIM110 (see above)
            if fill_id in ids:
                return True
        return False

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
        """The ledger after a funding payment, or ``None`` when it was booked already.

        A payment is identified by its venue and ``payment_id`` (two venues may number their
        payments alike)."""
        dedup_id = f"funding:{venue}:{payment_id}"
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
        fixed = self.positions.get(key, _FLAT).with_entry(qty, entry)
        return attrs.evolve(
            self, positions={**self.positions, key: fixed}, drift_repairs=self.drift_repairs + 1
        )

    def realign(self, key: PositionKey, entry: Decimal) -> Ledger:
        """Take the venue's average entry for a position whose size already agrees, moving
        realized PnL by the change of the cost basis (``qty × entry − cost``) so that total PnL
        is unchanged.

        With average-cost accounting the split between realized and unrealized PnL depends on
        the order fills were applied; a fill recovered after later ones (failure `missed-fills-on-reconnect`) is
        applied in a different order than the venue's, and this puts the split back where the
        venue has it.
        """
        pos = self.positions.get(key, _FLAT)
        if not pos.qty or pos.avg_entry == entry:
            return self
        fixed = pos.with_entry(pos.qty, entry)
        # Realized + unrealized (= realized + qty × mark − cost) stays exactly what it was.
        realized = CTX.add(pos.realized, CTX.subtract(fixed.cost, pos.cost))
        fixed = attrs.evolve(fixed, realized=realized)
        return attrs.evolve(self, positions={**self.positions, key: fixed})

    def totals(self) -> Position:
        """Sum of realized, fees and funding over every position (qty and entry left at zero).

        Only meaningful when every position settles in one currency; a bot settling in several
        uses :meth:`totals_by_currency` (amounts in different currencies are never added)."""
        realized = fees = funding = ZERO
        for p in self.positions.values():
            realized = CTX.add(realized, p.realized)
            fees = CTX.add(fees, p.fees)
            funding = CTX.add(funding, p.funding)
        return Position(realized=realized, fees=fees, funding=funding)

    def totals_by_currency(self, venue_currency: Mapping[str, str]) -> dict[str, Position]:
        """:meth:`totals` per settlement currency; ``venue_currency`` names the currency each
        venue's positions settle in (:attr:`gridcore.core.CoreConfig.venue_currency`), in the
        order the result lists them."""
        out = {currency: _FLAT for currency in dict.fromkeys(venue_currency.values())}
        for (venue, _symbol, _side), p in self.positions.items():
            currency = venue_currency.get(venue, "")
            t = out.get(currency, _FLAT)
            out[currency] = Position(
                realized=CTX.add(t.realized, p.realized),
                fees=CTX.add(t.fees, p.fees),
                funding=CTX.add(t.funding, p.funding),
            )
        return out


_FLAT = Position()

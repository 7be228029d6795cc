"""Which orders close exposure, and which add to it: the one definition the gate, the exchange
model and the invariant catalogue share.

Exposure is kept per position key ``(venue, symbol, position_side)``. In one-way mode an
instrument has one signed position (``BOTH``); in hedge mode it has a LONG position (``>= 0``)
and a SHORT one (``<= 0``) that never net against each other: a sell on the LONG side closes long
exposure (it is not new short exposure), a buy on the SHORT side closes short exposure.

An order *closes exposure* (:func:`closes_exposure`) when the venue itself guarantees that it
cannot add to its position: it is reduce-only, or it is a hedge-mode close (a sell on LONG, a
buy on SHORT; a venue rejects or trims such an order beyond the position). Closing orders pass
the risk gate while trading is halted and while a venue reconciles.

An order *offsets* a position (:func:`offsetting_orders`) when, without closing anything
itself, its fill would bring the account's net holding of that asset closer to zero without
going through it: the second leg of a hedged entry, short on one venue against a long filled
on another. A halt keeps such orders working (canceling them would leave the first leg
unhedged) and cancels every other order that could add exposure. Only one-way orders (``BOTH``)
can offset: in hedge mode an order on the SHORT side that is not a close opens short exposure on
its own key, whatever the LONG side holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from gridcore.instruments import Instrument, InstrumentKey, PositionSide, Side
from gridcore.numbers import CTX, ZERO

__all__ = ["asset_of", "closes_exposure", "offsetting_orders", "signed"]


def closes_exposure(side: Side, position_side: PositionSide, reduce_only: bool) -> bool:
    """True when an order can only reduce the position it is booked to (see the module doc)."""
    return (
        reduce_only
        or (position_side is PositionSide.LONG and side is Side.SELL)
        or (position_side is PositionSide.SHORT and side is Side.BUY)
    )


def signed(side: Side, qty: Decimal) -> Decimal:
    """``qty`` with the sign of ``side`` (a buy adds, a sell takes away)."""
    return qty if side is Side.BUY else -qty


def asset_of(instrument: Instrument) -> str:
    """The asset an instrument's positions hold: its ``base``, or the instrument itself (its
    ``venue/symbol``) when no base is named, so that nothing nets by accident."""
    return instrument.base or f"{instrument.venue}/{instrument.symbol}"


def offsetting_orders(
    orders: Iterable[tuple[str, InstrumentKey, Side, Decimal]],
    holdings: Mapping[str, Decimal],
    assets: Mapping[InstrumentKey, str],
) -> frozenset[str]:
    """The ids of the orders that offset held exposure (see the module doc).

    ``orders`` are ``(id, instrument key, side, remaining)`` of live orders that do not close
    exposure, oldest first; ``holdings`` the net position per asset (see :func:`asset_of`),
    ``assets`` the asset of each instrument. Orders are taken oldest first, each against what
    the earlier offsetting orders leave: an order counts when it points against the remaining
    holding and is no larger than it.
    """
    left = dict(holdings)
    keep: set[str] = set()
    for oid, key, side, remaining in orders:
        asset = assets.get(key)
        if asset is None:
            continue
        held = left.get(asset, ZERO)
        move = signed(side, remaining)
        if held and (held > 0) != (move > 0) and abs(move) <= abs(held):
            keep.add(oid)
            left[asset] = CTX.add(held, move)
    return frozenset(keep)

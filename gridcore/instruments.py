"""Instruments, sides and the rounding rules that go with them.

Quantities are in base units (``qty``), notionals in quote currency (``notional``). They never
share a field: converting one into the other always goes through :meth:`Instrument.qty_for_notional`
or :meth:`Instrument.notional`, with the price named.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from gridcore._enum import CoreEnum
from gridcore.numbers import CTX, ZERO, Rounding, round_to_step

__all__ = [
    "Instrument",
    "InstrumentKey",
    "PositionMode",
    "PositionSide",
    "Side",
    "Source",
    "TimeInForce",
]

#: ``(venue, symbol)``: how one tradable instrument is named across the core.
InstrumentKey = tuple[str, str]


class Side(CoreEnum):
    """The direction of an order or a fill."""

    BUY = "buy"  # takes base, pays quote
    SELL = "sell"  # gives base, receives quote

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        """The other side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class PositionSide(CoreEnum):
    """Which position an order or fill belongs to."""

    BOTH = "both"  # one-way mode: a single signed position per instrument
    LONG = "long"  # hedge mode: the long leg (quantity >= 0)
    SHORT = "short"  # hedge mode: the short leg (quantity <= 0)


class PositionMode(CoreEnum):
    """How a venue account books positions on one instrument."""

    ONE_WAY = "one_way"  # buys and sells net into one position
    HEDGE = "hedge"  # separate LONG and SHORT positions on one instrument


class TimeInForce(CoreEnum):
    """How long an order may rest."""

    GTC = "gtc"  # rests until filled or canceled
    IOC = "ioc"  # fills what it can now, the rest is canceled
    POST_ONLY = "post_only"  # rejected if it would take liquidity


class Source(CoreEnum):
    """Where an event came from."""

    STREAM = "stream"  # a venue's push feed
    REST = "rest"  # a response to a request
    REPLAY = "replay"  # the journal, during recovery
    SIM = "sim"  # the exchange model
    OPERATOR = "operator"  # a person


@attrs.frozen(kw_only=True)
class Instrument:
    """One tradable perpetual on one venue, with its exchange filters.

    ``tick_size`` and ``lot_size`` are the price and quantity steps; ``min_notional`` the
    smallest order value in quote currency. Fee rates are fractions (``Decimal("0.0002")`` is
    2 bps); a negative maker fee is a rebate.

    ``settlement`` is the currency the instrument's PnL, fees, funding and margin are paid in;
    it defaults to the quote currency, which is what linear (USDT-, USDC-margined) perpetuals
    settle in. Money in different settlement currencies is never added together: PnL and the
    drawdown halt are kept per currency.
    """

    venue: str
    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_notional: Decimal = ZERO
    maker_fee: Decimal = ZERO
    taker_fee: Decimal = ZERO
    base: str = ""
    quote: str = "USD"
    settlement: str = attrs.field(default=attrs.Factory(lambda self: self.quote, takes_self=True))

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.settlement, str) or not self.settlement:
            raise ValueError(
                f"instrument {self.symbol}: settlement must name a currency (leave it out to "
                f"settle in the quote currency {self.quote!r}), got {self.settlement!r}"
            )
        if self.tick_size <= 0:
            raise ValueError(
                f"instrument {self.symbol}: tick_size must be > 0, got {self.tick_size}"
            )
        if self.lot_size <= 0:
            raise ValueError(f"instrument {self.symbol}: lot_size must be > 0, got {self.lot_size}")
        if self.min_notional < 0:
            raise ValueError(
                f"instrument {self.symbol}: min_notional must be >= 0, got {self.min_notional}"
            )

    @property
    def key(self) -> InstrumentKey:
        """``(venue, symbol)``."""
        return (self.venue, self.symbol)

    def round_price(self, price: Decimal, rounding: Rounding) -> Decimal:
        """Snap a price to the tick grid in the named direction."""
        return round_to_step(price, self.tick_size, rounding)

    def round_qty(self, qty: Decimal, rounding: Rounding = Rounding.DOWN) -> Decimal:
        """Snap a base quantity to the lot grid (down by default: never size up silently)."""
        return round_to_step(qty, self.lot_size, rounding)

    def notional(self, qty: Decimal, price: Decimal) -> Decimal:
        """Quote value of ``qty`` base units at ``price``."""
        return CTX.multiply(abs(qty), price)

    def qty_for_notional(self, notional: Decimal, price: Decimal) -> Decimal:
        """Largest lot-rounded base quantity whose value at ``price`` is at most ``notional``."""
        return self.round_qty(CTX.divide(notional, price), Rounding.DOWN)

    def is_on_tick(self, price: Decimal) -> bool:
        """True when ``price`` is a whole multiple of the tick."""
        return CTX.remainder(price, self.tick_size) == 0

    def is_on_lot(self, qty: Decimal) -> bool:
        """True when ``qty`` is a whole multiple of the lot."""
        return CTX.remainder(qty, self.lot_size) == 0

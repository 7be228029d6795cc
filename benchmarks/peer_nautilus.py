# mypy: ignore-errors
# (Nautilus Trader is installed only in the ``nox -s peer`` environment, without type stubs.)
"""The Nautilus Trader side of the peer benchmark (``benchmarks/peer_bench.py`` runs it in a
fresh subprocess; it needs ``nautilus_trader`` installed, as ``nox -s peer`` does).

A neutral grid written for Nautilus's ``BacktestEngine`` (low-level API) that does what
gridcore's neutral grid does on the same quote path: ``levels`` limit orders each side of a
center, ``step`` apart; a filled buy at ``p`` is replaced by a sell at ``p + step`` and a
filled sell by a buy at ``p - step`` (the order count stays ``2 × levels``); when the mid leaves
the grid it is rebuilt around the mid (all orders canceled, the position kept). One net
position (``OmsType.NETTING``) on a margin account, 10,000 USDT, leverage 10, the instrument's
tick 0.1 and lot 0.001 (gridcore's ``BTC-PERP``).

The timed job (CPU time of this process, ``getrusage`` user+sys, imports excluded) builds the
quotes from the exported path file (pandas + ``QuoteTickDataWrangler``), sets up the engine and
runs it: data preparation is included, as it is on the gridcore side.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from decimal import Decimal

import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import BTC, USDT
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.persistence.wranglers import QuoteTickDataWrangler
from nautilus_trader.trading.strategy import Strategy


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class GridConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    levels: int
    step: Decimal
    order_qty: Decimal


class NeutralGrid(Strategy):
    def __init__(self, config: GridConfig) -> None:
        super().__init__(config)
        self.instrument = None
        self.center: Decimal | None = None
        self.levels = config.levels
        self.step = config.step
        self.qty = None
        self.fills = 0
        self.placed = 0
        self.rebuilds = 0

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.qty = self.instrument.make_qty(self.config.order_qty)
        self.subscribe_quote_ticks(self.config.instrument_id)

    def _place(self, side: OrderSide, price: Decimal) -> None:
        order = self.order_factory.limit(
            instrument_id=self.config.instrument_id,
            order_side=side,
            price=self.instrument.make_price(price),
            quantity=self.qty,
            post_only=False,
        )
        self.placed += 1
        self.submit_order(order)

    def _build(self, mid: Decimal) -> None:
        tick = self.instrument.price_increment.as_decimal()
        self.center = (mid / tick).to_integral_value() * tick
        for i in range(1, self.levels + 1):
            self._place(OrderSide.BUY, self.center - i * self.step)
            self._place(OrderSide.SELL, self.center + i * self.step)

    def on_quote_tick(self, quote: QuoteTick) -> None:
        mid = (quote.bid_price.as_decimal() + quote.ask_price.as_decimal()) / 2
        if self.center is None:
            self._build(mid)
            return
        reach = (self.levels + 1) * self.step
        if abs(mid - self.center) > reach:
            self.rebuilds += 1
            self.cancel_all_orders(self.config.instrument_id)
            self._build(mid)

    def on_order_filled(self, event: OrderFilled) -> None:
        self.fills += 1
        order = self.cache.order(event.client_order_id)
        if order is None or not order.is_closed:
            return  # a partial fill: the level is still held
        price = order.price.as_decimal()
        if order.side == OrderSide.BUY:
            self._place(OrderSide.SELL, price + self.step)
        else:
            self._place(OrderSide.BUY, price - self.step)

    def on_stop(self) -> None:
        pass


def run(spec: dict) -> dict:
    cpu0, wall0 = _cpu(), time.perf_counter()
    venue = Venue("SIM")
    instrument = CryptoPerpetual(
        instrument_id=InstrumentId(symbol=Symbol("BTC-PERP"), venue=venue),
        raw_symbol=Symbol("BTC-PERP"),
        base_currency=BTC,
        quote_currency=USDT,
        settlement_currency=USDT,
        is_inverse=False,
        price_precision=1,
        price_increment=Price.from_str("0.1"),
        size_precision=3,
        size_increment=Quantity.from_str("0.001"),
        max_quantity=Quantity.from_str("1000.000"),
        min_quantity=Quantity.from_str("0.001"),
        max_notional=None,
        min_notional=Money(10.00, USDT),
        max_price=Price.from_str("1000000.0"),
        min_price=Price.from_str("0.1"),
        margin_init=Decimal("0.1"),
        margin_maint=Decimal("0.05"),
        maker_fee=Decimal(spec["maker_fee"]),
        taker_fee=Decimal(spec["taker_fee"]),
        ts_event=0,
        ts_init=0,
    )
    # Inputs built inside the timed job, from the same file the gridcore side reads.
    frame = pd.read_csv(spec["path"], dtype={"ts": "int64", "bid": "float64", "ask": "float64"})
    frame.index = pd.to_datetime(frame.pop("ts"), unit="ms", utc=True)
    frame.index.name = "timestamp"
    ticks = QuoteTickDataWrangler(instrument).process(frame)

    engine = BacktestEngine(config=BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True)))
    engine.add_venue(
        venue=venue,
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        base_currency=USDT,
        starting_balances=[Money(10_000, USDT)],
        default_leverage=Decimal(10),
    )
    engine.add_instrument(instrument)
    engine.add_data(ticks)
    strategy = NeutralGrid(
        GridConfig(
            instrument_id=instrument.id,
            levels=spec["levels"],
            step=Decimal(spec["step"]),
            order_qty=Decimal(spec["order_qty"]),
        )
    )
    engine.add_strategy(strategy)
    engine.run()
    cpu = _cpu() - cpu0
    wall = time.perf_counter() - wall0
    result = {
        "side": "nautilus",
        "ticks": len(ticks),
        "events": int(engine.iteration),
        "event_unit": "engine iterations (data points processed)",
        "fills": strategy.fills,
        "orders": strategy.placed,
        "rebuilds": strategy.rebuilds,
        "cpu_s": cpu,
        "wall_s": wall,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    engine.dispose()
    return result


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))

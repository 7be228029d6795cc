"""The exchange model's fast paths agree with their plain definitions: the margin it keeps up
to date as orders rest, fill, change and leave equals the margin summed over every position and
order, and a venue refusing by the kept sum says exactly what a venue summing every time says;
the best prices it updates as an order joins the book are those of a pass over the book;
the events it builds unchecked equal the events the checked constructors build."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.commands import CancelOrder, Command, ModifyOrder, PlaceOrder
from gridcore.events import (
    Event,
    Fill,
    OrderAccepted,
    OrderFilled,
    OrderPartiallyFilled,
    QuoteTicked,
    accepted_of,
    fill_of,
    stream_fill_event,
)
from gridcore.instruments import (
    Instrument,
    PositionMode,
    PositionSide,
    Side,
    Source,
    TimeInForce,
)
from gridcore.numbers import CTX
from gridcore.sim import SimConfig, SimExchange
from gridcore.sim.exchange import SimOrder

D = Decimal
EPOCH = 1_700_000_000_000


class _PlainExchange(SimExchange):
    """The venue as first written: every placement sums every position and resting order."""

    def _used_margin(self) -> Decimal:
        return self.used_margin()

    def _best_with(self, order: SimOrder) -> None:
        self._refresh_best(order.symbol)


def _venue(cls: type[SimExchange], tick: Decimal, hedge: bool, liquidity: Decimal | None) -> Any:
    inst = Instrument(
        venue="sim",
        symbol="X",
        tick_size=tick,
        lot_size=D("0.001"),
        min_notional=D(1),
        maker_fee=D("0.0002"),
        taker_fee=D("0.0005"),
    )
    config = SimConfig(
        instruments=(inst,),
        starting_balance=D(5),
        leverage=D(3),
        liquidity=liquidity,
        position_mode=PositionMode.HEDGE if hedge else PositionMode.ONE_WAY,
        reid_on_modify=hedge,
    )
    return cls(config, start_ts=EPOCH)


_step = st.one_of(
    st.tuples(st.just("tick"), st.integers(min_value=-40, max_value=40)),
    st.tuples(
        st.just("place"),
        st.sampled_from(list(Side)),
        st.integers(min_value=1, max_value=30),  # lots of 0.001
        st.integers(min_value=-30, max_value=30),  # ticks from the mid
        st.booleans(),  # reduce-only
        st.sampled_from([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.POST_ONLY]),
        st.booleans(),  # long side (hedge mode)
    ),
    st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=40)),
    st.tuples(
        st.just("modify"),
        st.integers(min_value=0, max_value=40),
        st.integers(min_value=1, max_value=30),
        st.integers(min_value=-30, max_value=30),
    ),
)


def _order_price(mid: Decimal, away: int, tick: Decimal, side: Side | None) -> Decimal:
    if tick >= D("0.001"):
        return CTX.add(mid, CTX.multiply(D(away), tick))
    # A tick of 1E-36: prices of 39 digits, away from the market (the ledger keeps no entry
    # price of that many digits), so that nothing fills and the plain sum rounds.
    offset = CTX.multiply(D(abs(away) + 1), D("0.01"))
    return CTX.subtract(mid, offset) if side is Side.BUY else CTX.add(mid, offset)


def _command(step: tuple[Any, ...], n: int, mid: Decimal, tick: Decimal, hedge: bool) -> Command:
    kind = step[0]
    if kind == "place":
        _, side, lots, away, reduce_only, tif, long = step
        if hedge:
            position_side = PositionSide.LONG if long else PositionSide.SHORT
        else:
            position_side = PositionSide.BOTH
        return PlaceOrder(
            command_id=n,
            venue="sim",
            symbol="X",
            cloid=f"c{n}",
            side=side,
            position_side=position_side,
            qty=CTX.multiply(D(lots), D("0.001")),
            price=_order_price(mid, away, tick, side),
            tif=tif,
            reduce_only=reduce_only,
        )
    if kind == "cancel":
        return CancelOrder(command_id=n, venue="sim", symbol="X", cloid=f"c{step[1]}")
    _, target, lots, away = step
    return ModifyOrder(
        command_id=n,
        venue="sim",
        symbol="X",
        cloid=f"c{target}",
        venue_order_id=None,
        qty=CTX.multiply(D(lots), D("0.001")),
        price=_order_price(mid, away, tick, None),
    )


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(_step, max_size=60),
    # A tick with many digits makes the plain sum round in gridcore's context: the kept sum
    # then defers to it.
    tick=st.sampled_from([D("0.1"), D("0.5"), D("1E-36")]),
    hedge=st.booleans(),
    liquidity=st.sampled_from([None, D("0.004")]),
)
def test_the_kept_margin_equals_the_plain_sum_and_refuses_alike(
    steps: list[tuple[Any, ...]], tick: Decimal, hedge: bool, liquidity: Decimal | None
) -> None:
    fast = _venue(SimExchange, tick, hedge, liquidity)
    plain = _venue(_PlainExchange, tick, hedge, liquidity)
    tiny = tick < D("0.001")
    mid = CTX.add(D(500), tick) if tiny else D(500)
    ts = EPOCH
    for n, step in enumerate(steps):
        ts += 10
        said: tuple[list[Event], list[Event]]
        if step[0] == "tick":
            move = CTX.multiply(D(step[1]), tick)
            mid = max(D(100), CTX.add(mid, move))
            q = QuoteTicked(ts=ts, venue="sim", symbol="X", bid=mid, ask=CTX.add(mid, tick))
            said = fast.on_tick(q), plain.on_tick(q)
        else:
            command = _command(step, n, mid, tick, hedge)
            said = fast.handle(command, ts), plain.handle(command, ts)
        assert said[0] == said[1]
        assert fast._used_margin() == fast.used_margin() == plain.used_margin()
        assert fast.cash == plain.cash and fast.positions == plain.positions
        # The best prices kept as orders join are those of a pass over the book.
        assert fast.best_buy == plain.best_buy and fast.best_sell == plain.best_sell
    # The kept book is what the resting orders say, order by order.
    rebuilt = _venue(SimExchange, tick, hedge, liquidity)
    rebuilt.resting = fast.resting
    del rebuilt.__dict__["_margin_orders"]  # as a model saved before it kept one
    assert rebuilt._margin_book() == fast._margin_book()
    assert rebuilt._margin_total == fast._margin_total


_name = st.text(min_size=1, max_size=8)
_dec = st.decimals(min_value=D("0.001"), max_value=D(10**6), places=3)
#: Per field, values a careless reducer might put there (the builders then defer to the checked
#: constructor, which raises).
_BAD: dict[str, list[Any]] = {
    "ts": [0, "1", EPOCH * 10],
    "venue": ["", None],
    "symbol": ["", 3],
    "fill_id": [""],
    "cloid": ["", None, 7],
    "venue_order_id": ["", None],
    "side": ["buy", None],
    "position_side": [None, "long"],
    "price": [D(0), D(-1), D("1e19"), D("1e-19"), D("Infinity"), D("NaN"), 5],
    "qty": [D(0), D("1e19"), D("1e-19"), D("NaN"), 5],
    "fee": [D("1e19"), D("-1e19"), D("Infinity"), D("NaN"), 0],
    "is_maker": [1, None],
    "command_id": [-1, 2**63, "1", True],
}


def _same(build: Any, checked: Any) -> Any:
    """What ``build()`` gives or raises is what ``checked()`` gives or raises."""
    try:
        want = checked()
    except Exception as exc:
        try:
            build()
        except Exception as got:
            assert type(got) is type(exc) and str(got) == str(exc)
            return None
        raise AssertionError(f"built what the constructor refuses: {exc}") from None
    made = build()
    assert type(made) is type(want) and made == want and repr(made) == repr(want)
    return made


@st.composite
def _values(draw: st.DrawFn) -> dict[str, Any]:
    values: dict[str, Any] = {
        "ts": draw(st.integers(min_value=EPOCH, max_value=EPOCH + 10**9)),
        "venue": draw(_name),
        "symbol": draw(_name),
        "fill_id": draw(_name),
        "cloid": draw(_name),
        "venue_order_id": draw(_name),
        "side": draw(st.sampled_from(list(Side))),
        "position_side": draw(st.sampled_from(list(PositionSide))),
        "price": draw(_dec),
        "qty": draw(_dec),
        "fee": draw(st.decimals(min_value=D(-10), max_value=D(10), places=6)),
        "is_maker": draw(st.booleans()),
        "command_id": draw(st.none() | st.integers(min_value=0, max_value=2**63 - 1)),
    }
    spoiled = draw(st.none() | st.sampled_from(sorted(_BAD)))
    if spoiled is not None:
        values[spoiled] = draw(st.sampled_from(_BAD[spoiled]))
    return values


@settings(max_examples=200, deadline=None)
@given(v=_values())
def test_the_quickly_checked_events_equal_the_checked_ones(v: dict[str, Any]) -> None:
    fill_fields = {k: x for k, x in v.items() if k != "command_id"}
    fill = _same(lambda: fill_of(**fill_fields), lambda: Fill(**fill_fields))
    if fill is not None:
        for cls in (OrderFilled, OrderPartiallyFilled):
            _same(
                lambda cls=cls: stream_fill_event(cls, v["ts"], fill),
                lambda cls=cls: cls(ts=v["ts"], fill=fill, source=Source.STREAM),
            )
    ack = (v["ts"], v["venue"], v["cloid"], v["venue_order_id"], v["command_id"])
    _same(
        lambda: accepted_of(*ack),
        lambda: OrderAccepted(
            ts=ack[0],
            venue=ack[1],
            cloid=ack[2],
            venue_order_id=ack[3],
            source=Source.REST,
            command_id=ack[4],
        ),
    )


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("place"), st.sampled_from(list(Side)), st.integers(1, 25)),
            st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=20)),
            st.tuples(st.just("tick"), st.integers(min_value=-30, max_value=30)),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_the_best_prices_kept_as_orders_join_are_those_of_the_book(
    steps: list[tuple[Any, ...]],
) -> None:
    """Orders resting away from the market, placed in any order of prices and canceled or
    filled between: the best bid and ask the venue keeps are the best of its book after every
    step (a placement updates them without a pass over the book)."""
    venue = _venue(SimExchange, D("0.5"), False, None)
    venue.cash = D(10**6)
    mid = D(500)
    ts = EPOCH
    venue.on_tick(QuoteTicked(ts=ts, venue="sim", symbol="X", bid=mid, ask=mid + D("0.5")))
    for n, step in enumerate(steps):
        ts += 10
        if step[0] == "place":
            _, side, away = step
            price = mid - away if side is Side.BUY else mid + D("0.5") + away
            venue.handle(
                PlaceOrder(
                    command_id=n,
                    venue="sim",
                    symbol="X",
                    cloid=f"c{n}",
                    side=side,
                    position_side=PositionSide.BOTH,
                    qty=D("0.004"),
                    price=price,
                    tif=TimeInForce.GTC,
                    reduce_only=False,
                ),
                ts,
            )
        elif step[0] == "cancel":
            venue.handle(
                CancelOrder(command_id=n, venue="sim", symbol="X", cloid=f"c{step[1]}"), ts
            )
        else:
            bid = mid + step[1]
            venue.on_tick(QuoteTicked(ts=ts, venue="sim", symbol="X", bid=bid, ask=bid + D("0.5")))
        book = list(venue.resting["X"].values())
        buys = [o.price for o in book if o.side is Side.BUY]
        sells = [o.price for o in book if o.side is Side.SELL]
        assert venue.best_buy["X"] == (max(buys) if buys else None)
        assert venue.best_sell["X"] == (min(sells) if sells else None)

"""Builders shared by the unit and property tests of the pure core.

Everything here goes through the public API: states come from :func:`gridcore.initial_state`
(or :func:`gridcore.sim.make_bot`) and move only through :func:`gridcore.step`. The
:class:`Scripted` strategy does nothing on its own: a test makes it ask for orders with
:func:`intend`, so kernel rules (lifecycle, ledger, risk, sync) are tested apart from any grid.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Self, TypeVar

import attrs

from gridcore import (
    BalanceReported,
    Batch,
    Command,
    CoreConfig,
    Event,
    Fill,
    FillsReported,
    Instrument,
    Intent,
    OpenOrder,
    OpenOrdersReported,
    OrderChange,
    OrderStatus,
    PlaceOrder,
    PositionReport,
    PositionSide,
    PositionsReported,
    QuoteTicked,
    RequestBalances,
    RequestFills,
    RequestOpenOrders,
    RequestPositions,
    RiskConfig,
    Side,
    Started,
    State,
    Strategy,
    Submit,
    TimerFired,
    initial_state,
    step,
)
from gridcore.config import DEFAULT_TOML, BotConfig, load_config
from gridcore.grid import NeutralGrid, grid_levels, pivot_for
from gridcore.sim import SimExchange, make_bot, make_exchange

__all__ = [
    "ASK",
    "BID",
    "EPOCH",
    "SYMBOL",
    "VENUE",
    "Scripted",
    "answer_sync",
    "deliver",
    "feed",
    "fill",
    "flat",
    "grid_config",
    "grid_mismatch",
    "instrument",
    "intend",
    "kernel_config",
    "of_type",
    "only",
    "quote",
    "reservation_problems",
    "run_with_exchange",
    "scripted_state",
    "submit",
    "synced",
    "synced_grid",
    "synced_with_exchange",
]

EPOCH = 1_700_000_000_000
VENUE = "sim"
SYMBOL = "BTC-PERP"
BID = Decimal("49999.9")
ASK = Decimal("50000.1")

C = TypeVar("C")
St = TypeVar("St", bound=Strategy)


def instrument(**overrides: Any) -> Instrument:
    """BTC-PERP on the simulated venue: tick 0.1, lot 0.001, min notional 10, 2/5 bps fees."""
    fields: dict[str, Any] = {
        "venue": VENUE,
        "symbol": SYMBOL,
        "tick_size": Decimal("0.1"),
        "lot_size": Decimal("0.001"),
        "min_notional": Decimal(10),
        "maker_fee": Decimal("0.0002"),
        "taker_fee": Decimal("0.0005"),
        "base": "BTC",
        "quote": "USD",
    }
    fields.update(overrides)
    return Instrument(**fields)


def kernel_config(
    *, risk: RiskConfig | None = None, inst: Instrument | None = None, **overrides: Any
) -> CoreConfig:
    """A one-instrument kernel configuration with the background reconciliation off (so a
    test decides every request) and, unless ``risk`` is given, the position, order-notional
    and drawdown limits explicitly off (so a test sizes orders freely); ``overrides`` go to
    :class:`CoreConfig`."""
    fields: dict[str, Any] = {"reconcile_ms": 0}
    fields.update(overrides)
    return CoreConfig(
        instruments=(inst or instrument(),),
        risk=risk
        or RiskConfig(
            leverage=Decimal(10), max_position=None, max_order_notional=None, max_drawdown=None
        ),
        **fields,
    )


# --- a strategy that does only what the test says ----------------------------------------------


@attrs.frozen(kw_only=True)
class Scripted:
    """A :class:`gridcore.Strategy` that asks for nothing by itself.

    ``script`` maps timer ids to the intents the strategy returns when that timer fires (see
    :func:`intend`). ``changes`` records every order change the kernel reported, ``readies``
    every venue that became ready, in order.
    """

    script: Mapping[str, tuple[Intent, ...]] = attrs.field(factory=dict)
    changes: tuple[OrderChange, ...] = ()
    readies: tuple[str, ...] = ()

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]] | None:
        return None

    def on_changes(
        self, view: State[Self], changes: Sequence[OrderChange]
    ) -> tuple[Self, Sequence[Intent]]:
        return attrs.evolve(self, changes=self.changes + tuple(changes)), ()

    def on_ready(self, view: State[Self], venue: str) -> tuple[Self, Sequence[Intent]]:
        return attrs.evolve(self, readies=(*self.readies, venue)), ()

    def on_timer(self, view: State[Self], timer_id: str) -> tuple[Self, Sequence[Intent]]:
        return self, self.script.get(timer_id, ())

    def on_event(self, view: State[Self], event: Event) -> tuple[Self, Sequence[Intent]]:
        return self, ()


def scripted_state(config: CoreConfig | None = None, *, epoch: int = EPOCH) -> State[Scripted]:
    """A fresh kernel state driving a :class:`Scripted` strategy."""
    return initial_state(config or kernel_config(), Scripted(), epoch=epoch)


_GO = "test:go"


def intend(
    state: State[Scripted], intents: Iterable[Intent], *, ts: int
) -> tuple[State[Scripted], list[Command]]:
    """Make the strategy ask for ``intents`` now (through a timer it owns), and step."""
    strategy = attrs.evolve(state.strategy, script={_GO: tuple(intents)})
    armed = attrs.evolve(state, strategy=strategy)
    new, commands = step(armed, TimerFired(ts=ts, timer_id=_GO))
    return attrs.evolve(new, strategy=attrs.evolve(new.strategy, script={})), commands


def submit(
    state: State[Scripted],
    *,
    ts: int,
    side: Side = Side.BUY,
    qty: str | Decimal = "0.01",
    price: str | Decimal = "49000",
    **extra: Any,
) -> tuple[State[Scripted], list[Command], PlaceOrder | None]:
    """Ask for one order; return the state, the commands and the ``PlaceOrder`` (``None`` when
    the kernel refused it)."""
    intent = Submit(
        venue=VENUE, symbol=SYMBOL, side=side, qty=Decimal(qty), price=Decimal(price), **extra
    )
    new, commands = intend(state, [intent], ts=ts)
    places = of_type(commands, PlaceOrder)
    return new, commands, (places[0] if places else None)


# --- events and commands -----------------------------------------------------------------------


def quote(ts: int, bid: Decimal | str = BID, ask: Decimal | str = ASK) -> QuoteTicked:
    """A top-of-book tick on BTC-PERP."""
    return QuoteTicked(ts=ts, venue=VENUE, symbol=SYMBOL, bid=Decimal(bid), ask=Decimal(ask))


def fill(
    fill_id: str,
    side: Side,
    qty: Decimal | str,
    price: Decimal | str,
    *,
    ts: int = EPOCH,
    cloid: str | None = None,
    venue_order_id: str | None = None,
    fee: Decimal | str = "0",
    position_side: PositionSide = PositionSide.BOTH,
    symbol: str = SYMBOL,
) -> Fill:
    """One execution on the simulated venue."""
    return Fill(
        ts=ts,
        venue=VENUE,
        symbol=symbol,
        fill_id=fill_id,
        cloid=cloid,
        venue_order_id=venue_order_id,
        side=side,
        position_side=position_side,
        price=Decimal(price),
        qty=Decimal(qty),
        fee=Decimal(fee),
    )


def flat(commands: Iterable[Command]) -> list[Command]:
    """Commands with every :class:`~gridcore.Batch` opened into its inner commands."""
    out: list[Command] = []
    for command in commands:
        if isinstance(command, Batch):
            out.extend(command.commands)
        else:
            out.append(command)
    return out


def of_type(commands: Iterable[Command], kind: type[C]) -> list[C]:
    """The commands of one type, batches opened."""
    return [c for c in flat(commands) if isinstance(c, kind)]


def only(commands: Iterable[Command], kind: type[C]) -> C:
    """The single command of ``kind``; fails the test when there is not exactly one."""
    found = of_type(commands, kind)
    assert len(found) == 1, f"expected one {kind.__name__}, got {found!r}"
    return found[0]


def feed(state: State[St], events: Iterable[Event]) -> tuple[State[St], list[Command]]:
    """Step every event in order; return the final state and every command emitted."""
    out: list[Command] = []
    for event in events:
        state, commands = step(state, event)
        out.extend(commands)
    return state, out


# --- reconciliation ---------------------------------------------------------------------------


def answer_sync(
    commands: Sequence[Command],
    *,
    ts: int,
    equity: Decimal | str = "10000",
    positions: Sequence[PositionReport] = (),
    fills: Sequence[Fill] = (),
    open_orders: Sequence[OpenOrder] = (),
) -> list[Event]:
    """The venue's answers to the four sync requests in ``commands``, matched by command type,
    in the order fills, open orders, positions, balance."""
    answers: list[Event] = []
    for command in flat(commands):
        if isinstance(command, RequestFills):
            answers.append(
                FillsReported(
                    ts=ts,
                    venue=command.venue,
                    since=command.since,
                    fills=tuple(fills),
                    command_id=command.command_id,
                )
            )
    for command in flat(commands):
        if isinstance(command, RequestOpenOrders):
            answers.append(
                OpenOrdersReported(
                    ts=ts,
                    venue=command.venue,
                    orders=tuple(open_orders),
                    command_id=command.command_id,
                )
            )
    for command in flat(commands):
        if isinstance(command, RequestPositions):
            answers.append(
                PositionsReported(
                    ts=ts,
                    venue=command.venue,
                    positions=tuple(positions),
                    command_id=command.command_id,
                )
            )
    for command in flat(commands):
        if isinstance(command, RequestBalances):
            answers.append(
                BalanceReported(
                    ts=ts,
                    venue=command.venue,
                    asset="USD",
                    equity=Decimal(equity),
                    available=Decimal(equity),
                    command_id=command.command_id,
                )
            )
    return answers


def synced(
    state: State[St],
    *,
    ts: int = EPOCH + 1_000,
    bid: Decimal | str = BID,
    ask: Decimal | str = ASK,
    equity: Decimal | str = "10000",
    positions: Sequence[PositionReport] = (),
    fills: Sequence[Fill] = (),
    open_orders: Sequence[OpenOrder] = (),
) -> tuple[State[St], list[Command]]:
    """``Started``, a quote, then the four sync reports (all at ``ts``): a bot that may trade.

    Returns the state and the commands of the steps after ``Started`` (the rebuild on ready).
    """
    state, started = step(state, Started(ts=ts))
    state, _ = step(state, quote(ts, bid, ask))
    answers = answer_sync(
        started,
        ts=ts,
        equity=equity,
        positions=positions,
        fills=fills,
        open_orders=open_orders,
    )
    assert len(answers) == 4, f"Started should ask for four reports, got {started!r}"
    return feed(state, answers)


# --- the neutral grid ----------------------------------------------------------------------------


def grid_config(**settings: str) -> BotConfig:
    """The default configuration (:data:`gridcore.config.DEFAULT_TOML`) with the background
    reconciliation round off and ``settings`` replaced, each given as ``key="toml value"``
    (``max_inventory='"0.004"'``); a key missing from the default text fails loudly."""
    text = DEFAULT_TOML.replace("reconcile_ms = 60000", "reconcile_ms = 0")
    for key, value in settings.items():
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert count == 1, f"{key} is not a line of DEFAULT_TOML"
    return load_config(text)


def synced_grid(
    config: BotConfig | None = None, *, ts: int = EPOCH + 1_000, **sync: Any
) -> tuple[State[Any], list[Command]]:
    """A neutral-grid bot synced at ``ts`` with the default quote: its grid is in the commands."""
    bot = make_bot(config or grid_config(), epoch=EPOCH)
    return synced(bot, ts=ts, **sync)


def reservation_problems(state: State[Any]) -> list[str]:
    """Why the reservations are inconsistent (empty when they are not): every live order's
    reservation is counted in the venue total, and a done order holds none (failure `unreleased-funds`)."""
    problems: list[str] = []
    totals: dict[str, Decimal] = {}
    for order in state.orders.values():
        if order.is_live:
            totals[order.venue] = totals.get(order.venue, Decimal(0)) + order.reserved
        elif order.reserved:
            problems.append(f"{order.cloid} is {order.status.name} and holds {order.reserved}")
    for venue in set(totals) | set(state.risk.reserved):
        held, total = totals.get(venue, Decimal(0)), state.risk.reserved.get(venue, Decimal(0))
        if held != total:
            problems.append(f"{venue}: reserved {total}, live orders hold {held}")
    return problems


def run_with_exchange(
    state: State[St],
    exchange: SimExchange,
    commands: Iterable[Command],
    *,
    now: int,
    drop: frozenset[type[Any]] = frozenset(),
    check: Callable[[State[St]], None] | None = None,
) -> tuple[State[St], list[Command]]:
    """Carry ``commands`` out on ``exchange`` at ``now`` and feed every answer back, until the
    core asks for nothing more the venue answers. Answers whose type is in ``drop`` are lost;
    ``check`` is called on the state after every step. Returns the state and every command
    emitted on the way."""
    queue = list(commands)
    emitted: list[Command] = []
    while queue:
        command = queue.pop(0)
        for event in exchange.handle(command, now):
            if type(event) in drop:
                continue
            state, more = step(state, event)
            if check is not None:
                check(state)
            emitted.extend(more)
            queue.extend(more)
    return state, emitted


def deliver(
    state: State[St],
    exchange: SimExchange,
    events: Iterable[Event],
    *,
    now: int,
    check: Callable[[State[St]], None] | None = None,
) -> tuple[State[St], list[Command]]:
    """Step ``events`` (from the venue or the shell) and carry out on ``exchange`` whatever the
    core asks for on the way; ``check`` as in :func:`run_with_exchange`."""
    emitted: list[Command] = []
    for event in events:
        state, commands = step(state, event)
        if check is not None:
            check(state)
        emitted.extend(commands)
        state, more = run_with_exchange(state, exchange, commands, now=now, check=check)
        emitted.extend(more)
    return state, emitted


def synced_with_exchange(
    config: BotConfig | None = None, *, ts: int = EPOCH + 1_000
) -> tuple[State[Any], SimExchange]:
    """A neutral-grid bot and its simulated venue, reconciled at ``ts`` with the default quote
    and every grid order resting at the venue."""
    config = config or grid_config()
    exchange = make_exchange(config, start_ts=EPOCH)
    state: State[Any] = make_bot(config, epoch=EPOCH)
    tick = quote(ts)
    exchange.on_tick(tick)
    state, started = step(state, Started(ts=ts))
    state, _ = step(state, tick)
    state, _ = run_with_exchange(state, exchange, started, now=ts)
    assert state.can_trade(VENUE)
    return state, exchange


def grid_mismatch(state: State[Any]) -> list[str]:
    """How the neutral grid's live orders differ from ``grid_levels`` for the ledger position
    (failure `fill-during-rebuild`); empty when they match. A level whose order is being canceled may be empty
    until the cancel resolves (also while a refused cancel waits for its status answer); nothing
    else may be missing, doubled or extra."""
    grid = state.strategy
    assert isinstance(grid, NeutralGrid)
    if grid.center is None:
        return []
    cfg = grid.config
    inst = state.config.instrument(cfg.venue, cfg.symbol)
    position = state.ledger.position(cfg.venue, cfg.symbol, cfg.position_side).qty
    pivot = pivot_for(position - grid.base_position, grid.center, grid.step, cfg, inst)
    desired = {
        (lv.side, lv.price): lv.qty
        for lv in grid_levels(
            center=grid.center,
            step=grid.step,
            pivot=pivot,
            position=position,
            config=cfg,
            instrument=inst,
        )
    }
    live: dict[tuple[Side, Decimal], list[Decimal]] = {}
    canceling: set[tuple[Side, Decimal]] = set()
    for order in state.orders.values():
        if not order.is_live or not order.tag.startswith(cfg.tag + ":"):
            continue
        key = (order.side, order.price)
        # A cancel on its way, or one the venue refused whose status request is out (the
        # kernel does not send it again before the answer): the grid asked for it to go.
        if order.status in (OrderStatus.PENDING_CANCEL, OrderStatus.CANCEL_FAILED):
            canceling.add(key)
        else:
            live.setdefault(key, []).append(order.qty)
    # An order in doubt or whose cancel failed may still rest at the venue: the grid places no
    # level that would cross it, so such levels stay empty until it is resolved.
    unresolved = [
        o
        for o in state.orders.values()
        if o.status in (OrderStatus.IN_DOUBT, OrderStatus.CANCEL_FAILED)
        and o.tag.startswith(cfg.tag + ":")
    ]

    def blocked(key: tuple[Side, Decimal]) -> bool:
        side, price = key
        if side is Side.SELL:
            return any(o.side is Side.BUY and o.price >= price for o in unresolved)
        return any(o.side is Side.SELL and o.price <= price for o in unresolved)

    problems = []
    for key, qtys in sorted(live.items(), key=lambda kv: (kv[0][0].value, kv[0][1])):
        if key not in desired:
            problems.append(f"live {key[0].value} at {key[1]} is not a level for {position}")
        elif qtys != [desired[key]]:
            problems.append(f"{key[0].value} at {key[1]}: orders {qtys}, level {desired[key]}")
    for key in sorted(set(desired) - set(live) - canceling, key=lambda k: (k[0].value, k[1])):
        if blocked(key):
            continue
        problems.append(f"level {key[0].value} at {key[1]} has no order (position {position})")
    return problems


@contextmanager
def working_copies() -> Iterator[list[int]]:
    """The time of every working copy the kernel builds meanwhile (the general path's: a
    ``Tx`` of the kernel's), seen by a profile hook (no private module is imported)."""
    built: list[int] = []

    def hook(frame: Any, event: str, arg: Any) -> None:
        code = frame.f_code
        if (
            event == "call"
            and code.co_qualname == "Tx.__init__"
            and frame.f_globals.get("__name__", "").startswith("gridcore.kernel.")
        ):
            built.append(frame.f_locals["ts"])

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        yield built
    finally:
        sys.setprofile(previous)

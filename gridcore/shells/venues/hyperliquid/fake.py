"""A loopback fake of Hyperliquid: real HTTP and WebSocket on 127.0.0.1, the venue's wire protocol.

It serves ``POST /info``, ``POST /exchange`` and the ``/ws`` WebSocket exactly as the venue
shapes them (decimal strings, integer ids, errors inside HTTP 200), so that an unmodified client
(the official SDK, or :mod:`.adapter`) can trade against it. Orders are matched by the simulated
venue's exchange model (:class:`gridcore.sim.exchange.SimExchange`: one one-way account, maker
fills when the quote trades through a resting order, taker fills at the touch) over a seeded
random-walk market that ticks every ``tick_ms`` of real time.

What it checks, as the venue does:

* the signature: the signer is recovered from the L1 action (phantom agent source "b" by
  default, as a client pointed at a non-mainnet URL signs); a signer that is neither the
  account nor one of its approved agents gets ``User or API Wallet 0x… does not exist.``;
* nonces per signer: ``Invalid nonce: duplicate nonce <n>``, ``Invalid nonce: nonce too low
  <n> < <least>`` once the signer's nonce set (``nonce_set_size`` highest) is full, and the
  time window (``nonce_window_ms`` either side of the fake's clock);
* per order (errors inside ``statuses``, the action itself ``ok``): prices with more than 5
  significant figures or ``6 - szDecimals`` decimals, sizes off the lot, the $10 minimum,
  post-only orders that would cross, IOC orders that cannot match, margin, reduce-only;
* ``modify``/``batchModify`` give the order a **new oid** under the same cloid.

Fault injection (thread-safe, from the test or an operator): :meth:`HyperliquidFake.reject_next`,
:meth:`lose_next_answer` (executed-but-timed-out, or lost before acting), :meth:`fail_next`
(HTTP 5xx or 429), :meth:`disconnect_feed` / :meth:`drop_sockets`, :meth:`send_malformed`,
:meth:`post_only_window`, :meth:`drop_next_funding` (a payment booked but never streamed),
:meth:`fail_info` (one kind of ``/info`` query answered HTTP 500). ``gridcore fake-venue hyperliquid --port N`` runs it standalone.

Needs ``gridcore[hyperliquid-fake]`` (hypercorn: a maintained ASGI server with HTTP/1.1 and
WebSocket on trio, so the fake runs in its own thread with its own event loop, independent of
the client's).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import threading
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from gridcore.commands import CancelOrder, ModifyOrder, PlaceOrder
from gridcore.events import (
    Event,
    Fill,
    FundingPaid,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    QuoteTicked,
    ReportedStatus,
)
from gridcore.instruments import PositionSide, Side, TimeInForce
from gridcore.numbers import CTX, Rounding
from gridcore.shells.venues.hyperliquid.meta import (
    MIN_NOTIONAL,
    Asset,
    instruments_from_meta,
    is_valid_price,
)
from gridcore.shells.venues.hyperliquid.signing import decimal_to_wire, recover_signer
from gridcore.sim.exchange import SimConfig, SimExchange, SimOrder

__all__ = ["DEFAULT_COINS", "CoinSpec", "HyperliquidFake", "Received"]

Json = dict[str, Any]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Json]]
Send = Callable[[Json], Awaitable[None]]

BAD_BODY = "Failed to deserialize the JSON body into the target type"
CANCEL_MISSING = "Order was never placed, already canceled, or filled."
POST_ONLY_WINDOW = "Only post-only orders allowed immediately after a network upgrade"
_VENUE = "hyperliquid"
_DAY_MS = 86_400_000
#: The most payments one ``userFunding`` answer holds, as on the venue.
FUNDING_PAGE = 500
#: The venue's dead-man switch: a ``scheduleCancel`` time at least this far ahead of now.
SCHEDULE_LEAD_MS = 5_000
#: The venue's dead-man switch fires at most this many times per UTC day (the count of fires,
#: not of arming or refreshing, resets at 00:00 UTC).
SCHEDULE_TRIGGERS_PER_DAY = 10
SCHEDULE_TOO_EARLY = "Scheduled cancel time too early, must be at least 5 seconds from now."
SCHEDULE_BUDGET_SPENT = "Too many scheduled cancel triggers today (at most 10)."


@attrs.frozen
class Received:
    """One ``/exchange`` request as the fake saw it (kept only with ``record=True``, for tests
    and benchmarks): when it arrived (``time.perf_counter_ns``), who signed it with which
    nonce, its action type, the cloids of the new orders it carried, and the refusal of the
    whole action (``None``: processed)."""

    arrived_ns: int
    signer: str
    nonce: int
    kind: str
    new_cloids: tuple[str, ...]
    refusal: str | None


@attrs.frozen
class CoinSpec:
    """One perp the fake lists: its name, ``szDecimals`` and starting mid."""

    name: str
    sz_decimals: int
    start_price: Decimal


DEFAULT_COINS = (
    CoinSpec("BTC", 5, Decimal(65_000)),
    CoinSpec("ETH", 4, Decimal(3_200)),
)


def _wall_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


def _perf_ns() -> int:
    import time

    return time.perf_counter_ns()


def _num(text: Any, what: str) -> Decimal:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a decimal string")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"{what}: {text!r} is not a number") from exc
    if not value.is_finite():
        raise ValueError(f"{what}: {text!r} is not finite")
    return value


class _BadBody(Exception):
    """The body is not the venue's type: HTTP 422 with the venue's plain text."""


@attrs.define
class _Socket:
    """One WebSocket connection: its outbox and its subscriptions."""

    outbox: trio.MemorySendChannel[str]
    subs: list[Json] = attrs.field(factory=list)
    closed: bool = False


class HyperliquidFake:
    """The fake venue (see the module docstring). Use as a context manager or
    :meth:`start`/:meth:`stop`; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(
        self,
        *,
        account: str,
        balance: Decimal = Decimal(100_000),
        coins: tuple[CoinSpec, ...] = DEFAULT_COINS,
        agents: tuple[str, ...] = (),
        mainnet: bool = False,
        port: int = 0,
        tick_ms: int = 200,
        seed: int = 1,
        volatility: Decimal = Decimal("0.0004"),
        funding_interval_ms: int = 3_600_000,
        funding_rate: Decimal = Decimal("0.0000125"),
        nonce_set_size: int = 100,
        nonce_window_ms: int = _DAY_MS,
        now_ms: Callable[[], int] = _wall_ms,
        record: bool = False,
    ) -> None:
        self.account = account.lower()
        self.agents = {a.lower() for a in agents}
        self.mainnet = mainnet
        self.port = port
        self.tick_ms = tick_ms
        self.nonce_set_size = nonce_set_size
        self.nonce_window_ms = nonce_window_ms
        self._now_ms = now_ms
        self._rng = random.Random(seed)
        self._volatility = volatility
        self.meta: Json = {
            "universe": [
                {"name": c.name, "szDecimals": c.sz_decimals, "maxLeverage": 20} for c in coins
            ]
        }
        self.assets: dict[str, Asset] = instruments_from_meta(self.meta, venue=_VENUE)
        self.by_id: dict[int, Asset] = {a.asset_id: a for a in self.assets.values()}
        start = now_ms()
        self.exchange = SimExchange(
            SimConfig(
                venue=_VENUE,
                instruments=tuple(a.instrument for a in self.assets.values()),
                starting_balance=balance,
                asset="USDC",
                leverage=Decimal(20),
                funding_interval_ms=funding_interval_ms,
                funding_rate=funding_rate,
                reid_on_modify=True,
            ),
            start_ts=start,
        )
        self.mids: dict[str, Decimal] = {c.name: c.start_price for c in coins}
        self.funding_rate = funding_rate
        self._lock = threading.RLock()
        self._nonces: dict[str, list[int]] = {}
        self._sockets: list[_Socket] = []
        self._seq = 0
        self._no_cloid: dict[str, int] = {}  # internal cloid of an order sent without one
        self._order_ts: dict[str, int] = {}  # cloid -> placement time
        self._status_ts: dict[str, int] = {}
        self._position: dict[str, Decimal] = {}
        self._entry: dict[str, Decimal] = {}  # average entry price per coin, for closedPnl
        self._fills: list[Json] = []
        self._fundings: list[Json] = []
        self._scheduled_cancel: int | None = None
        #: Dead-man switch fires per UTC day (day number -> fires).
        self.schedule_triggers: dict[int, int] = {}
        #: Test-only: every ``/exchange`` request, in arrival order (``record=True``).
        self.record = record
        self.received: list[Received] = []
        # faults
        self._reject_next = False
        self._lose_next: bool | None = None
        self._fail_next: int | None = None
        self._malformed = False
        self._drop = False
        self._drop_fundings = 0
        self._failing_info: str | None = None
        self._post_only = False
        self.requests = 0
        #: Every signed action accepted for processing: (type, number of orders or cancels).
        self.actions: list[tuple[str, int]] = []
        self._refuse_ws = False
        self._frozen = False
        self._held = False
        self._raw: list[str] = []
        self._quotes_due: list[tuple[str, Decimal, Decimal]] = []
        #: ``time.perf_counter_ns()`` when the last quote queued by :meth:`queue_quote` was
        #: pushed (``None`` until then): the start of a stream-to-request measurement.
        self.quote_pushed_ns: int | None = None
        #: Why each HTTP 422 was sent (the venue says nothing more; tests and operators can).
        self.refused_bodies: list[str] = []
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: trio.Event | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._error: BaseException | None = None
        for quote in self._quote():  # a first quote, so the book is never empty
            self.exchange.on_tick(quote)

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``ws://…/ws`` for the stream)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HyperliquidFake:
        """Serve in a background thread; returns once the port is bound."""
        self._thread = threading.Thread(target=self._thread_main, name="hl-fake", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise RuntimeError(f"the Hyperliquid fake failed to start: {self._error}")
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._token is not None and self._stop is not None:
            # run_sync_soon works from any thread, including one running another trio loop.
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def __enter__(self) -> HyperliquidFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _thread_main(self) -> None:
        try:
            trio.run(self.serve)
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
            self._started.set()

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until :meth:`stop` (or cancellation), on the current trio loop."""
        self._stop = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        config = HypercornConfig()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.accesslog = None
        config.errorlog = None
        config.graceful_timeout = 0.5
        config.keep_alive_timeout = 60
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(_serve_app, self._app, config, self._stop.wait)
            self.port = int(binds[0].rsplit(":", 1)[1])
            nursery.start_soon(self._market)
            self._started.set()
            task_status.started(self.url)
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    # --- fault injection -------------------------------------------------------------------------

    def reject_next(self) -> None:
        """The next ``/exchange`` action is refused as a whole (HTTP 200, status ``err``)."""
        with self._lock:
            self._reject_next = True

    def lose_next_answer(self, *, applied: bool) -> None:
        """The next ``/exchange`` action gets no answer (the client times out); ``applied``:
        the venue acts on it first (executed but timed out)."""
        with self._lock:
            self._lose_next = applied

    def fail_next(self, status: int = 500) -> None:
        """The next ``/exchange`` request is answered with HTTP ``status`` (5xx: the outcome is
        unknown to the client and the fake does not act; 429: rate limited)."""
        with self._lock:
            self._fail_next = status

    def disconnect_feed(self) -> None:
        """Close every WebSocket now (the client reconnects by itself)."""
        with self._lock:
            self._drop = True

    drop_sockets = disconnect_feed

    def fail_info(self, kind: str | None) -> None:
        """Until called again, every ``/info`` request of type ``kind`` is answered HTTP 500
        (``None``: none): a query the venue keeps failing, its outcome unknown to the client."""
        with self._lock:
            self._failing_info = kind

    def drop_next_funding(self, rounds: int = 1) -> None:
        """The next ``rounds`` funding rounds are booked (``userFunding`` lists them) but not
        pushed on ``userFundings``: payments the stream lost."""
        with self._lock:
            self._drop_fundings += rounds

    def send_malformed(self) -> None:
        """The next market-data frame is unreadable."""
        with self._lock:
            self._malformed = True

    def refuse_websockets(self, on: bool) -> None:
        """While on, WebSocket handshakes are refused (REST still answers): an outage of the
        stream alone."""
        with self._lock:
            self._refuse_ws = on

    def freeze_market(self, on: bool) -> None:
        """While on, the market stands still: no new quotes, so no resting order fills."""
        with self._lock:
            self._frozen = on

    def hold_market(self, on: bool) -> None:
        """While on, the market keeps quoting but its price stands: every tick repeats the
        last bid and ask (with a fresh time), so no resting order fills and no grid leaves its
        range, while a client's quote never goes stale. (:meth:`freeze_market` stops the quotes
        themselves and wins over this.)"""
        with self._lock:
            self._held = on

    def post_only_window(self, on: bool) -> None:
        """While on, orders that are not ALO are refused (the window after a network upgrade)."""
        with self._lock:
            self._post_only = on

    def push_raw(self, *texts: str) -> None:
        """On the next tick, send each text as it is to every WebSocket (malformed-message
        tests: the adapter must survive anything on the wire)."""
        with self._lock:
            self._raw.extend(texts)

    def queue_quote(self, coin: str, bid: Decimal, ask: Decimal) -> None:
        """On the next tick, the market quotes ``bid``/``ask`` for ``coin`` (resting orders it
        crosses fill), whether or not the market is frozen; :attr:`quote_pushed_ns` records
        when it went out."""
        with self._lock:
            self._quotes_due.append((coin, bid, ask))

    def approve_agent(self, agent: str) -> None:
        """Let ``agent`` sign for the account (an API wallet)."""
        with self._lock:
            self.agents.add(agent.lower())

    # --- the ASGI app ---------------------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path, method = scope["path"], scope["method"]
        if method != "POST" or path not in ("/info", "/exchange"):
            await _respond(send, 404, "text/plain", b"Not Found")
            return
        self.requests += 1
        try:
            request = json.loads(body)
            if not isinstance(request, dict):
                raise _BadBody
            if path == "/info":
                if self._failing_info is not None and request.get("type") == self._failing_info:
                    await _respond(send, 500, "text/plain", b"fake: injected failure")
                    return
                answer = self._info(request)
            else:
                fail = self._take_fail()
                if fail is not None:
                    await _respond(send, fail, "text/plain", b"fake: injected failure")
                    return
                lose = self._take_lose()
                if lose is not None:
                    if lose:
                        self._exchange(request)
                    await trio.sleep_forever()  # no answer; the client times out
                answer = self._exchange(request)
        except (_BadBody, ValueError, KeyError, TypeError, AttributeError) as exc:
            self.refused_bodies.append(f"{path}: {type(exc).__name__}: {exc}")
            await _respond(send, 422, "text/plain", BAD_BODY.encode())
            return
        await _respond(send, 200, "application/json", json.dumps(answer).encode())

    def _take_fail(self) -> int | None:
        with self._lock:
            fail, self._fail_next = self._fail_next, None
            return fail

    def _take_lose(self) -> bool | None:
        with self._lock:
            lose, self._lose_next = self._lose_next, None
            return lose

    # --- /info ----------------------------------------------------------------------------------

    def _info(self, request: Json) -> Any:
        kind = request["type"]
        with self._lock:
            if kind == "meta":
                return self.meta
            if kind == "spotMeta":
                return {"universe": [], "tokens": []}
            if kind == "metaAndAssetCtxs":
                return [self.meta, [self._asset_ctx(c) for c in self.assets]]
            if kind == "allMids":
                return {c: decimal_to_wire(m) for c, m in self.mids.items()}
            if kind == "l2Book":
                return self._book(str(request["coin"]))
            mine = str(request.get("user", "")).lower() == self.account
            if kind in ("openOrders", "frontendOpenOrders"):
                orders = sorted(self.exchange.open_orders(), key=lambda o: int(o.oid))
                front = kind == "frontendOpenOrders"
                return [self._open_order(o, frontend=front) for o in orders] if mine else []
            if kind == "userFills":
                return list(reversed(self._fills[-2000:])) if mine else []
            if kind == "userFillsByTime":
                start = int(request["startTime"])
                end = request.get("endTime")
                stop = math.inf if end is None else int(end)
                found = [f for f in self._fills if start <= f["time"] <= stop] if mine else []
                return found[:2000]
            if kind == "userFunding":
                start = int(request["startTime"])
                end = request.get("endTime")
                stop = math.inf if end is None else int(end)
                paid = [f for f in self._fundings if start <= f["time"] <= stop] if mine else []
                return paid[:FUNDING_PAGE]  # oldest first, as the venue pages a time range
            if kind == "clearinghouseState":
                return self._clearinghouse(mine)
            if kind == "orderStatus":
                return self._order_status(request["oid"]) if mine else {"status": "unknownOid"}
            if kind == "userRateLimit":
                return {"cumVlm": "0.0", "nRequestsUsed": self.requests, "nRequestsCap": 10_000}
        raise _BadBody

    def _cloid_out(self, order: SimOrder) -> str | None:
        return None if order.cloid in self._no_cloid else order.cloid

    def _open_order(self, order: SimOrder, *, frontend: bool) -> Json:
        out: Json = {
            "coin": order.symbol,
            "side": "B" if order.side is Side.BUY else "A",
            "limitPx": decimal_to_wire(order.price),
            "sz": decimal_to_wire(order.remaining),
            "oid": int(order.oid),
            "timestamp": self._order_ts.get(order.cloid, 0),
            "origSz": decimal_to_wire(order.qty),
        }
        cloid = self._cloid_out(order)
        if cloid is not None:
            out["cloid"] = cloid
        if order.reduce_only:
            out["reduceOnly"] = True
        if frontend:
            out.update(
                {
                    "orderType": "Limit",
                    "tif": {
                        TimeInForce.GTC: "Gtc",
                        TimeInForce.IOC: "Ioc",
                        TimeInForce.POST_ONLY: "Alo",
                    }[order.tif],
                    "isTrigger": False,
                    "triggerPx": "0.0",
                    "triggerCondition": "N/A",
                    "isPositionTpsl": False,
                    "reduceOnly": order.reduce_only,
                    "children": [],
                    "cloid": cloid,
                }
            )
        return out

    def _order_status(self, oid: Any) -> Json:
        order: SimOrder | None
        if isinstance(oid, str):
            order = self.exchange.orders.get(oid.lower())
        else:
            order = self.exchange.by_oid.get(str(int(oid)))
        if order is None or order.oid == "0":
            return {"status": "unknownOid"}
        replaced = not isinstance(oid, str) and order.oid != str(int(oid))
        status = {
            ReportedStatus.OPEN: "open",
            ReportedStatus.FILLED: "filled",
            ReportedStatus.CANCELED: "canceled",
            ReportedStatus.REJECTED: "rejected",
        }.get(order.status, "canceled")
        wire = self._open_order(order, frontend=True)
        if replaced:  # modify is cancel-replace: the old oid reports canceled
            wire["oid"], status = int(oid), "canceled"
        return {
            "status": "order",
            "order": {
                "order": wire,
                "status": status,
                "statusTimestamp": self._status_ts.get(order.cloid, 0),
            },
        }

    def _clearinghouse(self, mine: bool) -> Json:
        ex = self.exchange
        positions = []
        ntl = Decimal(0)
        if mine:
            for (coin, _side), pos in sorted(ex.positions.items()):
                if not pos.qty:
                    continue
                mark = ex.mark(coin) or pos.avg_entry
                value = abs(pos.qty) * mark
                ntl += value
                positions.append(
                    {
                        "type": "oneWay",
                        "position": {
                            "coin": coin,
                            "szi": decimal_to_wire_signed(pos.qty),
                            "leverage": {"type": "cross", "value": 20},
                            "entryPx": _wire(pos.avg_entry),
                            "positionValue": _wire(value),
                            "unrealizedPnl": _wire_signed(pos.unrealized(mark)),
                            "returnOnEquity": "0.0",
                            "liquidationPx": None,
                            "marginUsed": _wire(value / 20),
                            "maxLeverage": 20,
                            "cumFunding": {
                                "allTime": _wire_signed(-pos.funding),
                                "sinceOpen": _wire_signed(-pos.funding),
                                "sinceChange": _wire_signed(-pos.funding),
                            },
                        },
                    }
                )
        equity = ex.equity() if mine else Decimal(0)
        used = ex.used_margin() if mine else Decimal(0)
        summary = {
            "accountValue": _wire_signed(equity),
            "totalNtlPos": _wire(ntl),
            "totalRawUsd": _wire_signed(equity),
            "totalMarginUsed": _wire(used),
        }
        return {
            "marginSummary": summary,
            "crossMarginSummary": summary,
            "crossMaintenanceMarginUsed": _wire(used / 2),
            "withdrawable": _wire_signed(max(equity - used, Decimal(0))),
            "assetPositions": positions,
            "time": self._now_ms(),
        }

    def _book(self, coin: str) -> Json:
        quote = self.exchange.quotes[coin]
        return {
            "coin": coin,
            "time": quote.ts,
            "levels": [
                [{"px": decimal_to_wire(quote.bid), "sz": "10", "n": 3}],
                [{"px": decimal_to_wire(quote.ask), "sz": "10", "n": 3}],
            ],
        }

    def _asset_ctx(self, coin: str) -> Json:
        mid = self.mids[coin]
        return {
            "funding": _wire_signed(self.funding_rate),
            "openInterest": "1000",
            "prevDayPx": decimal_to_wire(mid),
            "dayNtlVlm": "0.0",
            "premium": "0.0",
            "oraclePx": decimal_to_wire(mid),
            "markPx": decimal_to_wire(mid),
            "midPx": decimal_to_wire(mid),
            "impactPxs": [decimal_to_wire(mid), decimal_to_wire(mid)],
        }

    # --- /exchange ------------------------------------------------------------------------------

    def _exchange(self, request: Json) -> Json:
        action = request["action"]
        nonce = request["nonce"]
        signature = request["signature"]
        vault = request.get("vaultAddress")
        expires = request.get("expiresAfter")
        if not isinstance(action, dict) or not isinstance(nonce, int) or isinstance(nonce, bool):
            raise _BadBody
        try:
            signer = recover_signer(
                action,
                signature,
                nonce=nonce,
                mainnet=self.mainnet,
                vault_address=vault,
                expires_after=expires,
            ).lower()
        except ValueError as exc:
            raise _BadBody from exc
        now = self._now_ms()
        arrived = _perf_ns()
        with self._lock:
            answer = self._checked(action, signer, nonce, expires, now)
            if self.record:
                orders = action.get("orders") if action.get("type") == "order" else None
                cloids = tuple(
                    str(o.get("c")).lower()
                    for o in (orders if isinstance(orders, list) else [])
                    if isinstance(o, dict) and o.get("c")
                )
                refusal = str(answer["response"]) if answer.get("status") == "err" else None
                self.received.append(
                    Received(
                        arrived_ns=arrived,
                        signer=signer,
                        nonce=nonce,
                        kind=str(action.get("type")),
                        new_cloids=cloids,
                        refusal=refusal,
                    )
                )
            return answer

    def _checked(self, action: Json, signer: str, nonce: int, expires: Any, now: int) -> Json:
        if self._reject_next:
            self._reject_next = False
            return _err("fake: the venue refused this action")
        if signer != self.account and signer not in self.agents:
            return _err(f"User or API Wallet {signer} does not exist.")
        if expires is not None and int(expires) < now:
            return _err(f"Action expired at {expires}")
        refused = self._use_nonce(signer, nonce, now)
        if refused is not None:
            return _err(refused)
        return self._act(action, now)

    def _use_nonce(self, signer: str, nonce: int, now: int) -> str | None:
        seen = self._nonces.setdefault(signer, [])
        if nonce in seen:
            return f"Invalid nonce: duplicate nonce {nonce}"
        if len(seen) >= self.nonce_set_size and nonce < seen[0]:
            return f"Invalid nonce: nonce too low {nonce} < {seen[0]}"
        if abs(nonce - now) > self.nonce_window_ms:
            return f"Invalid nonce: nonce {nonce} is outside the allowed window around {now}"
        seen.append(nonce)
        seen.sort()
        del seen[: -self.nonce_set_size]
        return None

    def _act(self, action: Json, now: int) -> Json:
        kind = action["type"]
        self.actions.append((str(kind), len(action.get("orders") or action.get("cancels") or [])))
        if kind == "order":
            statuses = [self._order(wire, now) for wire in action["orders"]]
            return _ok("order", {"statuses": statuses})
        if kind == "cancel":
            return _ok(
                "cancel",
                {
                    "statuses": [
                        self._cancel(c["a"], oid=c["o"], now=now) for c in action["cancels"]
                    ]
                },
            )
        if kind == "cancelByCloid":
            statuses = [
                self._cancel(c["asset"], cloid=str(c["cloid"]).lower(), now=now)
                for c in action["cancels"]
            ]
            return _ok("cancel", {"statuses": statuses})
        if kind == "modify":
            status = self._modify(action["oid"], action["order"], now)
            if "error" in status:
                return _err(str(status["error"]))
            return {"status": "ok", "response": {"type": "default"}}
        if kind == "batchModify":
            statuses = [self._modify(m["oid"], m["order"], now) for m in action["modifies"]]
            return _ok("order", {"statuses": statuses})
        if kind == "scheduleCancel":
            return self._schedule_cancel(action.get("time"), now)
        if kind in ("noop", "updateLeverage"):
            return {"status": "ok", "response": {"type": "default"}}
        return _err(f"fake: unsupported action type {kind!r}")

    def _asset(self, asset_id: Any) -> Asset:
        if not isinstance(asset_id, int) or asset_id not in self.by_id:
            raise ValueError(f"unknown asset {asset_id!r}")
        return self.by_id[asset_id]

    def _parse_order(
        self, wire: Json, now: int, *, cloid: str | None = None
    ) -> tuple[PlaceOrder, Asset] | str:
        """A wire order as a place command, or the venue's error text."""
        asset = self._asset(wire["a"])
        price = _num(wire["p"], "price")
        size = _num(wire["s"], "size")
        limit = wire["t"].get("limit") if isinstance(wire["t"], dict) else None
        if limit is None:
            return "fake: trigger orders are not supported"
        tif = {"Gtc": TimeInForce.GTC, "Ioc": TimeInForce.IOC, "Alo": TimeInForce.POST_ONLY}.get(
            limit["tif"]
        )
        if tif is None:
            return f"fake: unsupported tif {limit['tif']!r}"
        inst = asset.instrument
        if not is_valid_price(price, asset.sz_decimals):
            return "Price must be divisible by tick size."
        if size <= 0 or not inst.is_on_lot(size):
            return "Order has invalid size."
        reduce_only = bool(wire["r"])
        if not reduce_only and price * size < MIN_NOTIONAL:
            return "Order must have minimum value of $10."
        if self._post_only and tif is not TimeInForce.POST_ONLY:
            return POST_ONLY_WINDOW
        if cloid is None:
            cloid = str(wire["c"]).lower() if wire.get("c") else None
        if cloid is None:
            self._seq += 1
            cloid = f"nocloid-{self._seq}"
            self._no_cloid[cloid] = self._seq
        quote = self.exchange.quotes[asset.coin]
        buy = bool(wire["b"])
        crosses = (buy and price >= quote.ask) or (not buy and price <= quote.bid)
        if tif is TimeInForce.POST_ONLY and crosses:
            bbo = f"{decimal_to_wire(quote.bid)}@{decimal_to_wire(quote.ask)}"
            return f"Post only order would have immediately matched, bbo was {bbo}."
        if tif is TimeInForce.IOC and not crosses:
            return "Order could not immediately match against any resting orders."
        place = PlaceOrder(
            command_id=0,
            venue=_VENUE,
            symbol=asset.coin,
            cloid=cloid,
            side=Side.BUY if buy else Side.SELL,
            position_side=PositionSide.BOTH,
            qty=size,
            price=price,
            tif=tif,
            reduce_only=reduce_only,
        )
        return place, asset

    def _order(self, wire: Json, now: int) -> Any:
        parsed = self._parse_order(wire, now)
        if isinstance(parsed, str):
            return {"error": parsed}
        place, _asset = parsed
        if place.cloid in self.exchange.orders:
            return {"error": "Duplicate cloid."}
        self._order_ts[place.cloid] = now
        events = self.exchange.handle(place, now)
        return self._place_status(place, events, now)

    def _place_status(self, place: PlaceOrder, events: list[Event], now: int) -> Any:
        self._publish(events, now)
        cloid_out = None if place.cloid in self._no_cloid else place.cloid
        extra = {} if cloid_out is None else {"cloid": cloid_out}
        for event in events:
            if isinstance(event, OrderRejected):
                return {"error": _sim_reason(event.reason)}
        order = self.exchange.orders[place.cloid]
        if order.filled > 0 and order.status is not ReportedStatus.OPEN:
            fills = [f for f in self._fills if f["oid"] == int(order.oid)]
            total = sum((Decimal(f["sz"]) for f in fills), Decimal(0))
            avg = sum((Decimal(f["sz"]) * Decimal(f["px"]) for f in fills), Decimal(0)) / total
            return {
                "filled": {
                    "totalSz": decimal_to_wire(total),
                    "avgPx": _wire(avg),
                    "oid": int(order.oid),
                    **extra,
                }
            }
        return {"resting": {"oid": int(order.oid), **extra}}

    def _find(self, *, oid: Any = None, cloid: str | None = None) -> SimOrder | None:
        if cloid is not None:
            order = self.exchange.orders.get(cloid)
        elif isinstance(oid, int) and not isinstance(oid, bool):
            order = self.exchange.by_oid.get(str(oid))
            if order is not None and order.oid != str(oid):
                return None  # a modified order's old oid: that order was replaced
        elif isinstance(oid, str):
            order = self.exchange.orders.get(oid.lower())
        else:
            raise ValueError(f"bad oid {oid!r}")
        if order is None or order.status is not ReportedStatus.OPEN:
            return None
        return order

    def _cancel(self, asset_id: Any, *, now: int, oid: Any = None, cloid: str | None = None) -> Any:
        asset = self._asset(asset_id)
        order = self._find(oid=oid, cloid=cloid)
        if order is None or order.symbol != asset.coin:
            return {"error": f"{CANCEL_MISSING} asset={asset.asset_id}"}
        events = self.exchange.handle(
            CancelOrder(command_id=0, venue=_VENUE, symbol=order.symbol, cloid=order.cloid), now
        )
        self._publish(events, now)
        return "success"

    def _modify(self, oid: Any, wire: Json, now: int) -> Any:
        order = self._find(oid=oid)
        if order is None:
            return {"error": "Cannot modify canceled or filled order"}
        parsed = self._parse_order(wire, now, cloid=order.cloid)
        if isinstance(parsed, str):
            return {"error": parsed}
        place, asset = parsed
        if asset.coin != order.symbol or place.side is not order.side:
            return {"error": "fake: a modify may change only price and size"}
        modify = ModifyOrder(
            command_id=0,
            venue=_VENUE,
            symbol=order.symbol,
            cloid=order.cloid,
            venue_order_id=order.oid,
            price=place.price,
            qty=place.qty,
        )
        old_oid = int(order.oid)
        events = self.exchange.handle(modify, now)
        for event in events:
            if not isinstance(event, OrderModified):
                return {"error": "Cannot modify canceled or filled order"}
        # Cancel-replace: the replaced oid is reported canceled, under the same cloid.
        gone = self._update(order, "canceled", now)
        gone["order"]["oid"] = old_oid
        self._push("orderUpdates", [gone], user=True)
        self._order_ts[order.cloid] = now
        # Cancel-replace: the new order may now cross; let the model match it on the quote.
        self._publish(events, now)
        self._publish(self.exchange.on_tick(self.exchange.quotes[order.symbol]), now)
        return self._place_status(place, [], now)

    def _schedule_cancel(self, when: Any, now: int) -> Json:
        """The dead-man switch, by the venue's rules: a time at least 5 s ahead arms (or moves)
        it, no time disarms it; arming and refreshing are free, and only a *fire* counts
        against the 10 a UTC day (once spent, the switch cannot be armed until 00:00 UTC)."""
        if when is None:
            self._scheduled_cancel = None
            return {"status": "ok", "response": {"type": "default"}}
        if not isinstance(when, int) or isinstance(when, bool):
            raise ValueError(f"scheduleCancel time {when!r} is not an integer")
        if when < now + SCHEDULE_LEAD_MS:
            return _err(SCHEDULE_TOO_EARLY)
        if self.schedule_triggers.get(now // _DAY_MS, 0) >= SCHEDULE_TRIGGERS_PER_DAY:
            return _err(SCHEDULE_BUDGET_SPENT)
        self._scheduled_cancel = when
        return {"status": "ok", "response": {"type": "default"}}

    def open_cloids(self) -> frozenset[str]:
        """The cloids of every order resting now (safe to call from another thread while the
        fake trades)."""
        with self._lock:
            return frozenset(o.cloid for o in self.exchange.open_orders())

    @property
    def scheduled_cancel(self) -> int | None:
        """When the armed dead-man switch fires (ms on the fake's clock), or ``None``."""
        with self._lock:
            return self._scheduled_cancel

    def fire_due_schedule(self) -> bool:
        """Fire the dead-man switch if its time has come on the fake's clock (the market loop
        calls this every tick; a test with a stepped clock may call it from any thread).
        True: fired."""
        try:
            inside = trio.lowlevel.current_trio_token() is self._token
        except RuntimeError:
            inside = False
        if not inside and self._token is not None:
            fired: bool = trio.from_thread.run_sync(self._fire_due, trio_token=self._token)
            return fired
        return self._fire_due()

    def pay_funding(self, ts: int | None = None) -> int:
        """Pay one funding round now (at ``ts``, default the fake's clock) on every open
        position, as the venue does at each funding time, whatever the interval: booked in
        ``userFunding`` and pushed on ``userFundings`` (unless :meth:`drop_next_funding`).
        Each call must use its own ``ts`` (the venue tells payments apart by time and coin).
        Returns how many payments it made. Callable from any thread, a thread running another
        trio loop included (it waits for the fake's own loop, which runs in its thread)."""
        try:
            inside = trio.lowlevel.current_trio_token() is self._token
        except RuntimeError:
            inside = False
        if inside or self._token is None:
            return self._pay_funding(ts)
        done = threading.Event()
        made: list[int] = []

        def pay() -> None:
            try:
                made.append(self._pay_funding(ts))
            finally:
                done.set()

        self._token.run_sync_soon(pay)
        done.wait()
        return made[0]

    def _pay_funding(self, ts: int | None) -> int:
        with self._lock:
            now = self._now_ms() if ts is None else ts
            before = len(self._fundings)
            self.exchange.next_funding_ts = now
            for quote in list(self.exchange.quotes.values()):
                self._publish(self.exchange.on_tick(attrs.evolve(quote, ts=now)), now)
            return len(self._fundings) - before

    def funding_rows(self) -> list[Json]:
        """Every ``userFunding`` row booked so far, oldest first (copies)."""
        with self._lock:
            return [json.loads(json.dumps(row)) for row in self._fundings]

    def _fire_due(self) -> bool:
        with self._lock:
            now = self._now_ms()
            if self._scheduled_cancel is None or now < self._scheduled_cancel:
                return False
            self._scheduled_cancel = None
            day = now // _DAY_MS
            self.schedule_triggers[day] = self.schedule_triggers.get(day, 0) + 1
            for order in list(self.exchange.open_orders()):
                self.exchange.handle(
                    CancelOrder(command_id=0, venue=_VENUE, symbol=order.symbol, cloid=order.cloid),
                    now,
                )
                self._status_ts[order.cloid] = now
                self._push("orderUpdates", [self._update(order, "scheduledCancel", now)], user=True)
            return True

    # --- events → wire and pushes ---------------------------------------------------------------

    def _publish(self, events: list[Event], now: int) -> None:
        updates: list[Json] = []
        fills: list[Json] = []
        paid: dict[str, FundingPaid] = {}  # by coin: one payment per coin per funding time
        for event in events:
            if isinstance(event, OrderAccepted | OrderModified):
                order = self.exchange.orders[event.cloid]
                self._status_ts[order.cloid] = now
                updates.append(self._update(order, "open", now))
            elif isinstance(event, OrderFilled | OrderPartiallyFilled):
                fills.append(self._fill_wire(event.fill))
                order = self.exchange.orders[event.fill.cloid or ""]
                if isinstance(event, OrderFilled):
                    self._status_ts[order.cloid] = now
                    updates.append(self._update(order, "filled", now))
            elif isinstance(event, OrderCanceled):
                order = self.exchange.orders[event.cloid]
                self._status_ts[order.cloid] = now
                updates.append(self._update(order, "canceled", now))
            elif isinstance(event, FundingPaid):
                # A tick late by more than the interval pays several rounds at one time; the
                # venue pays a coin once per funding time (its rows are told apart by time and
                # coin alone), so they are one payment here.
                before = paid.get(event.symbol)
                amount = event.amount if before is None else CTX.add(before.amount, event.amount)
                paid[event.symbol] = attrs.evolve(event, amount=amount)
        fundings = [self._funding_wire(p) for p in paid.values()]
        self._fills.extend(fills)
        self._fundings.extend(fundings)
        if fundings and self._drop_fundings:
            # Booked (the history has them) but never pushed: a payment the stream lost.
            self._drop_fundings -= 1
            fundings = []
        # As on the venue, a fill may be pushed before the order update that explains it.
        if fills:
            self._push("userFills", {"user": self.account, "fills": fills}, user=True)
        if updates:
            self._push("orderUpdates", updates, user=True)
        if fundings:
            pushed = [_stream_funding(f) for f in fundings]
            self._push("userFundings", {"user": self.account, "fundings": pushed}, user=True)

    def _update(self, order: SimOrder, status: str, now: int) -> Json:
        return {
            "order": self._open_order(order, frontend=False),
            "status": status,
            "statusTimestamp": now,
        }

    def _fill_wire(self, fill: Fill) -> Json:
        start = self._position.get(fill.symbol, Decimal(0))
        delta = fill.qty if fill.side is Side.BUY else -fill.qty
        end = start + delta
        self._position[fill.symbol] = end
        entry = self._entry.get(fill.symbol, fill.price)
        closed_pnl = Decimal(0)
        if start == 0 or (start > 0) == (delta > 0):  # opening or adding
            direction = "Open Long" if delta > 0 else "Open Short"
            total = abs(start) + abs(delta)
            self._entry[fill.symbol] = (abs(start) * entry + abs(delta) * fill.price) / total
        else:  # reducing, closing or flipping
            closed = min(abs(start), abs(delta))
            closed_pnl = closed * (fill.price - entry) * (1 if start > 0 else -1)
            if end != 0 and (end > 0) != (start > 0):
                direction = "Long > Short" if start > 0 else "Short > Long"
                self._entry[fill.symbol] = fill.price
            else:
                direction = "Close Long" if start > 0 else "Close Short"
        tid = int(fill.fill_id.rsplit("f", 1)[1])
        out: Json = {
            "coin": fill.symbol,
            "px": decimal_to_wire(fill.price),
            "sz": decimal_to_wire(fill.qty),
            "side": "B" if fill.side is Side.BUY else "A",
            "time": fill.ts,
            "startPosition": _wire_signed(start),
            "dir": direction,
            "closedPnl": _wire_signed(closed_pnl),
            "hash": "0x" + f"{tid:064x}",
            "oid": int(fill.venue_order_id or 0),
            "crossed": not fill.is_maker,
            "fee": _wire_signed(fill.fee),
            "tid": tid,
            "feeToken": "USDC",
            "twapId": None,
        }
        if fill.cloid not in self._no_cloid:
            out["cloid"] = fill.cloid
        return out

    def _funding_wire(self, paid: FundingPaid) -> Json:
        pos = self.exchange.position(paid.symbol)
        return {
            "time": paid.ts,
            "hash": "0x" + "0" * 64,
            "delta": {
                "type": "funding",
                "coin": paid.symbol,
                "usdc": _wire_signed(paid.amount),
                "szi": _wire_signed(pos.qty),
                "fundingRate": _wire_signed(self.funding_rate),
            },
        }

    def _push(
        self, channel: str, data: Any, *, user: bool = False, coin: str | None = None
    ) -> None:
        text = json.dumps({"channel": channel, "data": data})
        for sock in list(self._sockets):
            for sub in sock.subs:
                if sub.get("type") != channel:
                    continue
                if user and str(sub.get("user", "")).lower() != self.account:
                    continue
                if coin is not None and sub.get("coin") != coin:
                    continue
                _offer(sock, text)

    # --- the market -------------------------------------------------------------------------------

    def _quote(self, *, move: bool = True) -> list[QuoteTicked]:
        now = self._now_ms()
        out = []
        for coin, asset in self.assets.items():
            inst = asset.instrument
            mid = self.mids[coin]
            if move:
                step = Decimal(self._rng.gauss(0, 1)).quantize(Decimal("0.0001"))
                step *= self._volatility
                mid = inst.round_price(mid * (1 + step), Rounding.NEAREST)
                self.mids[coin] = mid
            bid = inst.round_price(mid - inst.price_step(mid), Rounding.DOWN)
            ask = inst.round_price(mid + inst.price_step(mid), Rounding.UP)
            out.append(QuoteTicked(ts=now, venue=_VENUE, symbol=coin, bid=bid, ask=ask))
        return out

    async def _market(self) -> None:
        while True:
            await trio.sleep(self.tick_ms / 1000)
            with self._lock:
                self._tick()

    def _tick(self) -> None:
        now = self._now_ms()
        if self._drop:
            self._drop = False
            for sock in self._sockets:
                sock.closed = True
                sock.outbox.close()
            self._sockets.clear()
        self.fire_due_schedule()
        raw, self._raw = self._raw, []
        for text in raw:
            for sock in list(self._sockets):
                _offer(sock, text)
        due, self._quotes_due = self._quotes_due, []
        for coin, bid, ask in due:
            quote = QuoteTicked(ts=now, venue=_VENUE, symbol=coin, bid=bid, ask=ask)
            self.mids[coin] = (bid + ask) / 2
            self.quote_pushed_ns = _perf_ns()
            self._publish(self.exchange.on_tick(quote), now)
            level = [
                {"px": decimal_to_wire(bid), "sz": "10", "n": 3},
                {"px": decimal_to_wire(ask), "sz": "10", "n": 3},
            ]
            self._push("bbo", {"coin": coin, "time": now, "bbo": level}, coin=coin)
        for quote in [] if self._frozen else self._quote(move=not self._held):
            self._publish(self.exchange.on_tick(quote), now)
            coin = quote.symbol
            if self._malformed:
                self._malformed = False
                text = json.dumps({"channel": "bbo", "data": {"coin": coin, "bbo": "garbage"}})
                for sock in list(self._sockets):
                    _offer(sock, text)
                continue
            level = [
                {"px": decimal_to_wire(quote.bid), "sz": "10", "n": 3},
                {"px": decimal_to_wire(quote.ask), "sz": "10", "n": 3},
            ]
            self._push("bbo", {"coin": coin, "time": now, "bbo": level}, coin=coin)
            self._push("l2Book", self._book(coin), coin=coin)
            self._push("activeAssetCtx", {"coin": coin, "ctx": self._asset_ctx(coin)}, coin=coin)
        self._push("allMids", {"mids": {c: decimal_to_wire(m) for c, m in self.mids.items()}})

    # --- WebSocket --------------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        if first["type"] != "websocket.connect" or scope["path"] != "/ws" or self._refuse_ws:
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        outbox, inbox = trio.open_memory_channel[str](math.inf)
        sock = _Socket(outbox=outbox)
        with self._lock:
            self._sockets.append(sock)

        async def writer() -> None:
            async for text in inbox:
                await send({"type": "websocket.send", "text": text})
            # Closed by the fake (a dropped socket): close the connection.
            await send({"type": "websocket.close", "code": 1001})
            nursery.cancel_scope.cancel()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                while True:
                    message = await receive()
                    if message["type"] == "websocket.disconnect":
                        nursery.cancel_scope.cancel()
                        break
                    text = message.get("text") or (message.get("bytes") or b"").decode()
                    with self._lock:
                        self._on_ws(sock, text)
        finally:
            with self._lock:
                if sock in self._sockets:
                    self._sockets.remove(sock)

    def _on_ws(self, sock: _Socket, text: str) -> None:
        try:
            message = json.loads(text)
            method = message["method"]
        except (ValueError, KeyError, TypeError):
            _offer(sock, json.dumps({"channel": "error", "data": f"Invalid message: {text}"}))
            return
        if method == "ping":
            _offer(sock, json.dumps({"channel": "pong"}))
            return
        subscription = message.get("subscription")
        if method not in ("subscribe", "unsubscribe") or not isinstance(subscription, dict):
            _offer(sock, json.dumps({"channel": "error", "data": f"Invalid message: {text}"}))
            return
        if method == "unsubscribe":
            sock.subs = [s for s in sock.subs if s != subscription]
        else:
            sock.subs.append(subscription)
        ack = {
            "channel": "subscriptionResponse",
            "data": {"method": method, "subscription": subscription},
        }
        _offer(sock, json.dumps(ack))
        if method != "subscribe":
            return
        kind = subscription.get("type")
        mine = str(subscription.get("user", "")).lower() == self.account
        # Only userFills and userFundings open with a snapshot; orderUpdates never does.
        if kind == "userFills":
            fills = list(self._fills[-2000:]) if mine else []
            data = {"user": subscription.get("user"), "fills": fills, "isSnapshot": True}
            _offer(sock, json.dumps({"channel": "userFills", "data": data}))
        elif kind == "userFundings":
            fundings = [_stream_funding(f) for f in self._fundings] if mine else []
            data = {"user": subscription.get("user"), "fundings": fundings, "isSnapshot": True}
            _offer(sock, json.dumps({"channel": "userFundings", "data": data}))


def _stream_funding(row: Json) -> Json:
    """A ``userFunding`` history row as the ``userFundings`` stream carries it: flat, without
    the hash and the type (``{time, coin, usdc, szi, fundingRate}``)."""
    delta = row["delta"]
    return {
        "time": row["time"],
        "coin": delta["coin"],
        "usdc": delta["usdc"],
        "szi": delta["szi"],
        "fundingRate": delta["fundingRate"],
    }


def _offer(sock: _Socket, text: str) -> None:
    if not sock.closed:
        try:
            sock.outbox.send_nowait(text)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            sock.closed = True


async def _serve_app(
    app: Any, config: HypercornConfig, trigger: Callable[[], Awaitable[None]], *, task_status: Any
) -> None:
    await serve(app, config, shutdown_trigger=trigger, task_status=task_status)


async def _respond(send: Send, status: int, kind: str, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", kind.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _ok(kind: str, data: Json) -> Json:
    return {"status": "ok", "response": {"type": kind, "data": data}}


def _err(text: str) -> Json:
    return {"status": "err", "response": text}


def _wire(value: Decimal) -> str:
    """A non-negative amount as a wire string, rounded to 8 decimals."""
    return decimal_to_wire(abs(value).quantize(Decimal("1e-8")))


def _wire_signed(value: Decimal) -> str:
    text = _wire(value)
    return "-" + text if value < 0 and text != "0" else text


def decimal_to_wire_signed(value: Decimal) -> str:
    """A signed size (``szi``) as a wire string."""
    return _wire_signed(value)


def _sim_reason(reason: str) -> str:
    """The exchange model's refusal, in the venue's words."""
    if "margin" in reason:
        return "Insufficient margin to place order."
    if "reduce-only" in reason:
        return "Reduce only order would increase position."
    if "minimum" in reason:
        return "Order must have minimum value of $10."
    if "tick" in reason:
        return "Price must be divisible by tick size."
    return f"fake: {reason}"

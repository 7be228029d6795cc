"""The Hyperliquid venue adapter: REST (httpx) for commands and reports, WebSocket
(trio-websocket) for the stream.

**It runs on trio** (trio-websocket is trio-only): ``gridcore run --venue hyperliquid`` starts
the runtime with the trio backend. See ``docs/hyperliquid.md``.

What it maps (every failure becomes an event, see :mod:`gridcore.shells.venue`):

==========================================  ===================================================
venue answer                                event / error
==========================================  ===================================================
order status ``resting`` / ``filled``        ``OrderAccepted`` (fills arrive on ``userFills``)
order status ``{"error": …}`` (HTTP 200)     ``OrderRejected`` with the venue's text
a batch answer missing an order's status    ``CommandFailed`` (outcome unknown) for that order
action ``{"status":"err"}`` (HTTP 200)       ``VenueError(not_applied=True)``: refused whole
                                            (bad signature, nonce, …)
HTTP 4xx (422, 429)                         ``VenueError(not_applied=True)``; 429 also backs
                                            the request-weight limiter off
HTTP 5xx                                    ``VenueError`` (outcome unknown)
timeout, reset, refused connection          ``TransportError`` (outcome unknown)
an answer that cannot be read               ``MessageMalformed`` + ``CommandFailed`` (unknown)
cancel ``success`` / error                  ``OrderCanceled`` / ``CancelRejected``
``batchModify`` status                      ``OrderModified`` (with the **new** oid) /
                                            ``ModifyRejected``
WS ``bbo``                                  ``QuoteTicked``
WS ``orderUpdates``                         ``OrderAccepted`` / ``OrderCanceled`` /
                                            ``OrderRejected`` (``filled`` is left to fills)
WS ``userFills``                            ``OrderFilled`` / ``OrderPartiallyFilled``
WS ``userFundings``                         ``FundingPaid`` (payment id ``<time>:<coin>``)
``RequestFunding`` (``userFunding`` paged)  ``FundingReported``: the same payment ids
WS ``activeAssetCtx``                       ``FundingRateUpdated``
anything else unreadable                    ``MessageMalformed``
==========================================  ===================================================

Order identity is the cloid, never the oid: a modify gives the order a new oid under the same
cloid. gridcore's own cloids are already the venue's form (``0x`` + 32 hex digits); any other
cloid of at most 16 bytes is carried hex-encoded, and a longer one is hashed (and mapped back
only within the process).

**The fill guarantor** (a reconnect must not lose fills): on every (re)connect the adapter
resubscribes, waits for every ``subscriptionResponse``, then fetches the fills since the last
one it saw with ``userFillsByTime`` (paged at 2,000), the funding payments since the last one
with ``userFunding`` (paged at 500), and the open orders (to refresh what it knows of each
order's size), and emits the fills and payments it has not emitted yet (dedup on the venue's
trade id and on the payment's ``<time>:<coin>``) *before* ``FeedReconnected``. The core then
resynchronises positions and orders itself, and asks for the funding history since its last
payment (``RequestFunding``), which recovers a payment the stream lost before a later one.

**The dead-man switch** (``dead_man_ms``, off by default): while :meth:`run` streams, the
adapter keeps the venue's ``scheduleCancel`` armed at ``now + dead_man_ms``, refreshed every
third of the window (a refresh is free; only a *fire* counts against the venue's 10 a UTC day),
so that a bot that dies (killed, frozen, cut off) has its orders canceled by the venue itself.
:meth:`disarm_dead_man` clears it on a clean stop. A refused or failed arming is logged and
retried; trading goes on without the switch (failure `orders-outlive-the-bot`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import httpx
import trio
import trio_websocket
from eth_utils.crypto import keccak

from gridcore.commands import (
    Batch,
    CancelOrder,
    ModifyOrder,
    PlaceOrder,
    RequestBalances,
    RequestFills,
    RequestFunding,
    RequestOpenOrders,
    RequestOrderStatus,
    RequestPositions,
)
from gridcore.errors import InvalidEvent
from gridcore.events import (
    BalanceReported,
    CancelRejected,
    CommandFailed,
    Event,
    FeedDisconnected,
    FeedReconnected,
    Fill,
    FillsReported,
    FundingPaid,
    FundingRateUpdated,
    FundingReported,
    MessageMalformed,
    ModifyRejected,
    OpenOrder,
    OpenOrdersReported,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatusReported,
    PositionReport,
    PositionsReported,
    QuoteTicked,
    ReportedStatus,
)
from gridcore.instruments import Instrument, PositionSide, Side, Source, TimeInForce
from gridcore.shells.runtime import K_RUNTIME, Clock, Sink
from gridcore.shells.venue import ExecCommand, TransportError, VenueError
from gridcore.shells.venues.hyperliquid.meta import Asset, instruments_from_meta
from gridcore.shells.venues.hyperliquid.nonces import NonceAllocator
from gridcore.shells.venues.hyperliquid.signing import (
    address_of,
    decimal_to_wire,
    sign_l1_action,
)

__all__ = [
    "MAINNET_URL",
    "TESTNET_URL",
    "HyperliquidAdapter",
    "WeightLimiter",
    "from_venue_cloid",
    "to_venue_cloid",
]

MAINNET_URL = "https://api.hyperliquid.xyz"
TESTNET_URL = "https://api.hyperliquid-testnet.xyz"
FILLS_PAGE = 2_000
#: The most payments one ``userFunding`` answer holds (the venue's limit for a time range).
FUNDING_PAGE = 500
_HL_CLOID = re.compile(r"0x[0-9a-f]{32}")
_TIF = {TimeInForce.GTC: "Gtc", TimeInForce.IOC: "Ioc", TimeInForce.POST_ONLY: "Alo"}
_TIF_BACK = {v: k for k, v in _TIF.items()}
_HOUR_MS = 3_600_000
#: The venue wants a dead-man time at least 5 s ahead; a window must leave room to refresh.
MIN_DEAD_MAN_MS = 10_000
_RETRY_DEAD_MAN_MS = 1_000
_log = logging.getLogger("gridcore.hyperliquid")
#: The raw text of the last HTTP answer read in this task (requests run concurrently, each in
#: its own task), carried into the ``MessageMalformed`` of an answer that cannot be read.
_ANSWER: contextvars.ContextVar[str] = contextvars.ContextVar("hyperliquid_answer", default="")


def to_venue_cloid(cloid: str) -> str:
    """gridcore's cloid in the venue's form (``0x`` + 32 lowercase hex digits)."""
    if _HL_CLOID.fullmatch(cloid):
        return cloid
    raw = cloid.encode()
    if len(raw) <= 16 and not raw.endswith(b"\x00"):
        return "0x" + raw.hex().ljust(32, "0")
    return "0x" + bytes(keccak(raw))[:16].hex()


def from_venue_cloid(venue_cloid: str) -> str:
    """The inverse of :func:`to_venue_cloid` for short cloids; a native (or hashed) cloid is
    returned as it is."""
    try:
        raw = bytes.fromhex(venue_cloid[2:]).rstrip(b"\x00")
    except ValueError:
        return venue_cloid
    if raw and all(32 < b < 127 for b in raw):
        return raw.decode()
    return venue_cloid


class WeightLimiter:
    """The venue's IP budget (1,200 request weight per minute), spent before each request,
    and a back-off after HTTP 429 (doubling from ``backoff_ms`` up to ``max_backoff_ms``, reset
    by the next success). :meth:`delay_ms` is the pure decision; :meth:`acquire` sleeps on the
    clock."""

    def __init__(
        self,
        *,
        capacity: int = 1_200,
        window_ms: int = 60_000,
        backoff_ms: int = 1_000,
        max_backoff_ms: int = 30_000,
    ) -> None:
        self.capacity = capacity
        self.window_ms = window_ms
        self.backoff_ms = backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self._tokens = float(capacity)
        self._at: int | None = None
        self._blocked_until = 0
        self._penalty = 0

    def _refill(self, now: int) -> None:
        if self._at is not None and now > self._at:
            rate = self.capacity / self.window_ms
            self._tokens = min(float(self.capacity), self._tokens + (now - self._at) * rate)
        if self._at is None or now > self._at:
            self._at = now

    def delay_ms(self, weight: int, now: int) -> int:
        """How long to wait before a request of ``weight`` may go (0: now)."""
        self._refill(now)
        wait = max(0, self._blocked_until - now)
        need = min(float(weight), float(self.capacity)) - self._tokens
        if need > 0:
            wait = max(wait, int(need * self.window_ms / self.capacity) + 1)
        return wait

    def spend(self, weight: int, now: int) -> None:
        """Record a request of ``weight`` sent at ``now``."""
        self._refill(now)
        self._tokens -= min(weight, self.capacity)

    def throttled(self, now: int) -> None:
        """The venue answered 429: block for the current back-off, and double it."""
        self._penalty = min(self.max_backoff_ms, max(self.backoff_ms, self._penalty * 2))
        self._blocked_until = max(self._blocked_until, now + self._penalty)

    def succeeded(self) -> None:
        """A request went through: the back-off starts over."""
        self._penalty = 0

    async def acquire(self, weight: int, clock: Clock) -> None:
        """Sleep on ``clock`` until a request of ``weight`` may go, then spend it."""
        keys = 0
        while (wait := self.delay_ms(weight, clock.now())) > 0:
            keys += 1
            await clock.sleep_until(clock.now() + wait, (K_RUNTIME, 2, keys))
        self.spend(weight, clock.now())


_LIGHT_INFO = frozenset(
    {
        "l2Book",
        "allMids",
        "clearinghouseState",
        "orderStatus",
        "spotClearinghouseState",
        "exchangeStatus",
    }
)
#: Info requests the venue charges more for by what they return: one more weight per this many
#: items of the answer's list.
_WEIGHT_PER_ITEMS = {
    "userFills": 20,
    "userFillsByTime": 20,
    "userFunding": 20,
    "fundingHistory": 20,
    "historicalOrders": 20,
    "candleSnapshot": 60,
}


def _info_weight(kind: str) -> int:
    """The weight of an info request before its answer: 2 for the light ones, 60 for
    ``userRole``, 20 for the rest."""
    if kind in _LIGHT_INFO:
        return 2
    return 60 if kind == "userRole" else 20


def _answer_weight(kind: str, answer: Any) -> int:
    """The weight an answer adds after it arrived: a list endpoint is charged per items
    returned (a long history walked page after page must slow down, not meet HTTP 429)."""
    per = _WEIGHT_PER_ITEMS.get(kind)
    return len(answer) // per if per is not None and isinstance(answer, list) else 0


@attrs.define
class _Order:
    """What the adapter knows of one order (the venue's stream omits some of it)."""

    symbol: str
    side: Side
    qty: Decimal
    tif: TimeInForce
    reduce_only: bool
    oid: str | None = None
    filled: Decimal = Decimal(0)


class _Malformed(Exception):
    """A venue message that cannot be read."""


def _dec(value: Any, what: str) -> Decimal:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise _Malformed(f"{what}: {value!r} is not a decimal string")
    try:
        out = Decimal(value)
    except InvalidOperation as exc:
        raise _Malformed(f"{what}: {value!r} is not a number") from exc
    if not out.is_finite():
        raise _Malformed(f"{what}: {value!r} is not finite")
    return out


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Malformed(f"{what}: {value!r} is not an integer")
    return value


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Malformed(f"{what}: expected a list, got {type(value).__name__}")
    return value


#: ``attrs.evolve`` on an event of any kind (the kinds share the field changed).
_evolve: Any = attrs.evolve


def _leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first exception inside a (nested) exception group."""
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def _status(text: str) -> ReportedStatus:
    if text in ("open", "triggered"):
        return ReportedStatus.OPEN
    if text == "filled":
        return ReportedStatus.FILLED
    if text == "rejected" or text.endswith("Rejected"):
        return ReportedStatus.REJECTED
    return ReportedStatus.CANCELED  # canceled, marginCanceled, scheduledCancel, …Canceled


class HyperliquidAdapter:
    """One Hyperliquid account behind the adapter contract (see the module docstring).

    ``private_key`` signs (the account's key or an approved API wallet's: then pass
    ``account``, the address queries are about); ``mainnet`` picks the phantom agent source
    ("a" mainnet, "b" otherwise, as the official SDK does for any non-mainnet URL).
    ``coins`` are the instruments whose quotes are streamed; ``nonces`` the signer's allocator
    (durable beside the journal in a live run). Call :meth:`connect` before use and
    :meth:`close` after (or ``async with``).
    """

    def __init__(
        self,
        *,
        base_url: str,
        private_key: str,
        mainnet: bool,
        coins: Sequence[str],
        clock: Clock,
        nonces: NonceAllocator,
        name: str = "hyperliquid",
        account: str | None = None,
        fills_since: int | None = None,
        http_timeout_s: float = 10.0,
        reconnect_ms: int = 500,
        max_reconnect_ms: int = 30_000,
        ws_url: str | None = None,
        limiter: WeightLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        dead_man_ms: int | None = None,
    ) -> None:
        if dead_man_ms is not None and dead_man_ms < MIN_DEAD_MAN_MS:
            raise ValueError(
                f"dead_man_ms must be >= {MIN_DEAD_MAN_MS} (the venue wants the cancel time at "
                f"least 5 s ahead, refreshed well before), got {dead_man_ms}"
            )
        self.dead_man_ms = dead_man_ms
        #: Dead-man switch armings the venue accepted / refused or that failed (this process).
        self.dead_man_armed = 0
        self.dead_man_failures = 0
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.ws_url = ws_url or self.base_url.replace("http", "ws", 1) + "/ws"
        self._key = private_key
        self.signer = address_of(private_key)
        self.account = (account or self.signer).lower()
        self.mainnet = mainnet
        self.coins = tuple(coins)
        self.clock = clock
        self.nonces = nonces
        self.http_timeout_s = http_timeout_s
        self.reconnect_ms = reconnect_ms
        self.max_reconnect_ms = max_reconnect_ms
        self._failures = 0
        self.limiter = limiter or WeightLimiter()
        self._transport = transport  # tests: an in-process transport instead of the network
        self.assets: dict[str, Asset] = {}
        self._http: httpx.AsyncClient | None = None
        self._orders: dict[str, _Order] = {}  # by gridcore cloid
        self._modifying: set[str] = set()  # cloids whose modify is in flight
        self._cloids: dict[str, str] = {}  # venue cloid -> gridcore cloid
        self._seen_fills: set[str] = set()
        self._last_fill_ts = clock.now() if fills_since is None else fills_since
        self._seen_funding: set[str] = set()
        self._last_funding_ts = self._last_fill_ts
        self._quiet = False
        self._sleeps = 0

    # --- connections ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the HTTP client and load the instruments from ``meta``."""
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.http_timeout_s, transport=self._transport
        )
        try:
            meta = await self._info({"type": "meta"})
            self.assets = instruments_from_meta(_obj(meta, "meta"), venue=self.name)
        except (_Malformed, ValueError) as exc:
            raise VenueError(f"{self.name}: unreadable meta: {exc}", not_applied=True) from exc
        missing = [c for c in self.coins if c not in self.assets]
        if missing:
            raise VenueError(
                f"{self.name}: coins {missing} are not listed; listed: {sorted(self.assets)}",
                not_applied=True,
            )

    def resume_fills_from(self, ts: int) -> None:
        """Fills and funding from ``ts`` on are the ones this process has not seen (a resumed
        journal's time); older ones are the journal's already."""
        self._last_fill_ts = self._last_funding_ts = ts

    async def mid(self, coin: str) -> Decimal:
        """The venue's current mid for ``coin`` (``allMids``)."""
        mids = _obj(await self._info({"type": "allMids"}), "allMids")
        try:
            return _dec(mids[coin], f"allMids[{coin}]")
        except KeyError:
            raise VenueError(f"{self.name}: no mid for {coin}", not_applied=True) from None

    def instrument_problems(self, instrument: Instrument, price: Decimal) -> list[str]:
        """What in a configured ``instrument`` the venue's ``meta`` contradicts (after
        :meth:`connect`): an unlisted coin, another lot, a tick finer than the venue accepts at
        ``price`` (its decimals and significant-figure rule), a minimum under $10. Empty when it
        fits."""
        asset = self.assets.get(instrument.symbol)
        if asset is None:
            return [
                f"[instrument] symbol {instrument.symbol!r} is not listed: {sorted(self.assets)}"
            ]
        venue = asset.instrument
        problems = []
        if instrument.lot_size != venue.lot_size:
            problems.append(
                f"[instrument] lot_size {instrument.lot_size} is not the venue's "
                f"{venue.lot_size} (szDecimals {asset.sz_decimals})"
            )
        step = venue.price_step(price)
        if instrument.tick_size % step != 0:
            problems.append(
                f"[instrument] tick_size {instrument.tick_size} is finer than the venue accepts "
                f"near {price}: prices step by {step} there (at most 5 significant figures and "
                f"{6 - asset.sz_decimals} decimals); set tick_size to a multiple of {step}"
            )
        if instrument.min_notional < venue.min_notional:
            problems.append(
                f"[instrument] min_notional {instrument.min_notional} is under the venue's "
                f"{venue.min_notional}"
            )
        return problems

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> HyperliquidAdapter:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def quiesce(self) -> None:
        """Stop emitting market data (orders and fills still flow)."""
        self._quiet = True

    # --- REST -----------------------------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any], weight: int) -> Any:
        if self._http is None:
            raise VenueError(f"{self.name}: not connected (call connect())", not_applied=True)
        await self.limiter.acquire(weight, self.clock)
        try:
            response = await self._http.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise TransportError(f"{self.name}: {path} timed out: {exc!r}") from exc
        except httpx.ConnectError as exc:
            # Nothing was sent: the venue cannot have acted.
            raise VenueError(f"{self.name}: cannot connect: {exc!r}", not_applied=True) from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"{self.name}: {path} failed: {exc!r}") from exc
        status = response.status_code
        if status == 429:
            self.limiter.throttled(self.clock.now())
            raise VenueError(f"{self.name}: rate limited (HTTP 429)", not_applied=True)
        if 400 <= status < 500:
            raise VenueError(f"{self.name}: HTTP {status}: {response.text[:200]}", not_applied=True)
        if status >= 500:
            raise VenueError(f"{self.name}: HTTP {status}: {response.text[:200]}")
        self.limiter.succeeded()
        _ANSWER.set(response.text[:200])
        try:
            return response.json()
        except ValueError as exc:
            raise _Malformed(f"{path}: answer is not JSON: {response.text[:200]!r}") from exc

    async def _info(self, body: dict[str, Any]) -> Any:
        kind = str(body["type"])
        answer = await self._post("/info", body, _info_weight(kind))
        extra = _answer_weight(kind, answer)
        if extra:
            self.limiter.spend(extra, self.clock.now())
        return answer

    async def _action(self, action: dict[str, Any], count: int = 1) -> Any:
        nonce = self.nonces.next()
        signature = sign_l1_action(self._key, action, nonce=nonce, mainnet=self.mainnet)
        body = {
            "action": action,
            "nonce": nonce,
            "signature": signature,
            "vaultAddress": None,
            "expiresAfter": None,
        }
        answer = _obj(await self._post("/exchange", body, 1 + count // 40), "exchange answer")
        if answer.get("status") == "err":
            raise VenueError(f"{self.name}: refused: {answer.get('response')}", not_applied=True)
        if answer.get("status") != "ok":
            raise _Malformed(f"exchange answer without status ok/err: {str(answer)[:200]}")
        return answer.get("response")

    # --- commands -------------------------------------------------------------------------------

    async def execute(self, command: ExecCommand) -> Sequence[Event]:
        """Carry out one command or batch (see :class:`~gridcore.shells.venue.VenueAdapter`)."""
        if not isinstance(command, Batch):
            return await self._one_group(command.__class__, [command], raise_errors=True)
        # One action per kind; post-only places apart from the others, because the venue
        # prioritises batches made only of post-only orders.
        groups: dict[tuple[type[Any], bool], list[Any]] = {}
        for inner in command.commands:
            alo = isinstance(inner, PlaceOrder) and inner.tif is TimeInForce.POST_ONLY
            groups.setdefault((type(inner), alo), []).append(inner)
        out: list[Event] = []
        for (kind, _alo), members in groups.items():
            out.extend(await self._one_group(kind, members, raise_errors=False))
        return out

    async def _one_group(
        self, kind: type[Any], commands: list[Any], *, raise_errors: bool
    ) -> list[Event]:
        try:
            try:
                if kind is PlaceOrder:
                    return await self._place(commands)
                if kind is CancelOrder:
                    return await self._cancel(commands)
                if kind is ModifyOrder:
                    return await self._modify(commands)
                out: list[Event] = []
                for command in commands:
                    out.extend(await self._request(command))
                return out
            except (_Malformed, InvalidEvent) as exc:
                now = self.clock.now()
                detail = f"{exc}; answer: {_ANSWER.get()}"
                bad: list[Event] = [
                    MessageMalformed(ts=now, venue=self.name, detail=detail, source=Source.REST)
                ]
                return bad + [
                    CommandFailed(
                        ts=now,
                        command_id=c.command_id,
                        reason=f"unreadable answer: {exc}",
                        not_applied=False,
                    )
                    for c in commands
                ]
        except (VenueError, TransportError) as exc:
            if raise_errors:
                raise
            now = self.clock.now()
            return [
                CommandFailed(
                    ts=now,
                    command_id=c.command_id,
                    reason=f"{type(exc).__name__}: {exc}",
                    not_applied=exc.not_applied,
                )
                for c in commands
            ]

    def _asset(self, symbol: str) -> Asset:
        asset = self.assets.get(symbol)
        if asset is None:
            raise VenueError(
                f"{self.name}: unknown coin {symbol!r}; listed: {sorted(self.assets)}",
                not_applied=True,
            )
        return asset

    def _venue_cloid(self, cloid: str) -> str:
        venue = to_venue_cloid(cloid)
        self._cloids[venue] = cloid
        return venue

    def _our_cloid(self, venue_cloid: Any) -> str | None:
        if not isinstance(venue_cloid, str):
            return None
        return self._cloids.get(venue_cloid.lower()) or from_venue_cloid(venue_cloid.lower())

    def _wire(
        self,
        *,
        symbol: str,
        side: Side,
        price: Decimal,
        qty: Decimal,
        tif: TimeInForce,
        reduce_only: bool,
        cloid: str,
    ) -> dict[str, Any]:
        # Key order matters: the signature covers msgpack of the dict as built here.
        return {
            "a": self._asset(symbol).asset_id,
            "b": side is Side.BUY,
            "p": decimal_to_wire(price),
            "s": decimal_to_wire(qty),
            "r": reduce_only,
            "t": {"limit": {"tif": _TIF[tif]}},
            "c": self._venue_cloid(cloid),
        }

    def _statuses(self, response: Any, count: int) -> list[Any]:
        data = _obj(_obj(response, "response").get("data"), "response.data")
        return _list(data.get("statuses"), "statuses")[:count]

    async def _place(self, places: list[PlaceOrder]) -> list[Event]:
        try:
            wires = [
                self._wire(
                    symbol=p.symbol,
                    side=p.side,
                    price=p.price,
                    qty=p.qty,
                    tif=p.tif,
                    reduce_only=p.reduce_only,
                    cloid=p.cloid,
                )
                for p in places
            ]
        except ValueError as exc:  # a price or size with more digits than the wire carries
            raise VenueError(f"{self.name}: {exc}", not_applied=True) from exc
        for p in places:
            if p.position_side is not PositionSide.BOTH:
                raise VenueError(
                    f"{self.name}: one-way account: position_side must be BOTH", not_applied=True
                )
            self._orders[p.cloid] = _Order(
                symbol=p.symbol, side=p.side, qty=p.qty, tif=p.tif, reduce_only=p.reduce_only
            )
        action = {"type": "order", "orders": wires, "grouping": "na"}
        statuses = self._statuses(await self._action(action, len(wires)), len(wires))
        now = self.clock.now()
        out: list[Event] = []
        for index, place in enumerate(places):
            if index >= len(statuses):
                out.append(
                    CommandFailed(
                        ts=now,
                        command_id=place.command_id,
                        reason="the venue's answer has no status for this order",
                    )
                )
                continue
            out.append(self._place_result(place, statuses[index], now))
        return out

    def _place_result(self, place: PlaceOrder, status: Any, now: int) -> Event:
        if isinstance(status, dict):
            for key in ("resting", "filled"):
                if key in status:
                    oid = str(_int(_obj(status[key], key).get("oid"), f"{key}.oid"))
                    self._orders[place.cloid].oid = oid
                    return OrderAccepted(
                        ts=now,
                        venue=self.name,
                        cloid=place.cloid,
                        venue_order_id=oid,
                        source=Source.REST,
                        command_id=place.command_id,
                    )
            if "error" in status:
                self._orders.pop(place.cloid, None)
                return OrderRejected(
                    ts=now,
                    venue=self.name,
                    cloid=place.cloid,
                    reason=str(status["error"]),
                    source=Source.REST,
                    command_id=place.command_id,
                )
        # "waitingForFill" / "waitingForTrigger" / anything else: accepted without an oid.
        return CommandFailed(
            ts=now,
            command_id=place.command_id,
            reason=f"order status {status!r} carries no order id; the core asks for it",
        )

    async def _cancel(self, cancels: list[CancelOrder]) -> list[Event]:
        action = {
            "type": "cancelByCloid",
            "cancels": [
                {"asset": self._asset(c.symbol).asset_id, "cloid": self._venue_cloid(c.cloid)}
                for c in cancels
            ],
        }
        statuses = self._statuses(await self._action(action, len(cancels)), len(cancels))
        now = self.clock.now()
        out: list[Event] = []
        for index, cancel in enumerate(cancels):
            status = statuses[index] if index < len(statuses) else None
            if status == "success":
                known = self._orders.get(cancel.cloid)
                out.append(
                    OrderCanceled(
                        ts=now,
                        venue=self.name,
                        cloid=cancel.cloid,
                        venue_order_id=known.oid if known else cancel.venue_order_id,
                        reason="canceled by request",
                        source=Source.REST,
                        command_id=cancel.command_id,
                    )
                )
            elif isinstance(status, dict) and "error" in status:
                out.append(
                    CancelRejected(
                        ts=now,
                        venue=self.name,
                        cloid=cancel.cloid,
                        reason=str(status["error"]),
                        command_id=cancel.command_id,
                    )
                )
            else:
                out.append(
                    CommandFailed(
                        ts=now,
                        command_id=cancel.command_id,
                        reason=f"cancel status {status!r} unreadable or missing",
                    )
                )
        return out

    async def _modify(self, modifies: list[ModifyOrder]) -> list[Event]:
        entries: list[dict[str, Any] | None] = []
        for m in modifies:
            known = self._orders.get(m.cloid) or await self._lookup(m.symbol, m.cloid)
            if known is None:
                entries.append(None)
                continue
            wire = self._wire(
                symbol=m.symbol,
                side=known.side,
                price=m.price,
                qty=m.qty,
                tif=known.tif,
                reduce_only=known.reduce_only,
                cloid=m.cloid,
            )
            entries.append({"oid": self._venue_cloid(m.cloid), "order": wire})
        sent = [e for e in entries if e is not None]
        statuses: list[Any] = []
        if sent:
            action = {"type": "batchModify", "modifies": sent}
            # While the modify travels, the venue may report the replaced oid canceled: that
            # is the old half of a cancel-replace, not the order's end.
            replacing = {m.cloid for m, e in zip(modifies, entries, strict=True) if e is not None}
            self._modifying |= replacing
            try:
                statuses = self._statuses(await self._action(action, len(sent)), len(sent))
            finally:
                self._modifying -= replacing
        now = self.clock.now()
        out: list[Event] = []
        position = 0
        for m, entry in zip(modifies, entries, strict=True):
            if entry is None:
                out.append(
                    ModifyRejected(
                        ts=now,
                        venue=self.name,
                        cloid=m.cloid,
                        reason="modify refused: the venue does not know this order",
                        command_id=m.command_id,
                    )
                )
                continue
            status = statuses[position] if position < len(statuses) else None
            position += 1
            if isinstance(status, dict) and ("resting" in status or "filled" in status):
                body = _obj(status.get("resting") or status.get("filled"), "modify status")
                oid = str(_int(body.get("oid"), "modify oid"))
                record = self._orders.get(m.cloid)
                if record is not None:
                    record.oid, record.qty = oid, m.qty
                out.append(
                    OrderModified(
                        ts=now,
                        venue=self.name,
                        cloid=m.cloid,
                        price=m.price,
                        qty=m.qty,
                        command_id=m.command_id,
                        venue_order_id=oid,
                    )
                )
            elif isinstance(status, dict) and "error" in status:
                out.append(
                    ModifyRejected(
                        ts=now,
                        venue=self.name,
                        cloid=m.cloid,
                        reason=f"modify refused: {status['error']}",
                        command_id=m.command_id,
                    )
                )
            else:
                out.append(
                    CommandFailed(
                        ts=now,
                        command_id=m.command_id,
                        reason=f"modify status {status!r} unreadable or missing",
                    )
                )
        return out

    async def _lookup(self, symbol: str, cloid: str) -> _Order | None:
        """What the venue holds of an order this process did not place (after a restart)."""
        answer = _obj(
            await self._info(
                {"type": "orderStatus", "user": self.account, "oid": self._venue_cloid(cloid)}
            ),
            "orderStatus",
        )
        if answer.get("status") != "order":
            return None
        inner = _obj(_obj(answer.get("order"), "order").get("order"), "order.order")
        record = self._record_from_wire(inner)
        self._orders[cloid] = record
        return record

    def _record_from_wire(self, wire: dict[str, Any]) -> _Order:
        orig = _dec(wire.get("origSz", wire.get("sz")), "origSz")
        return _Order(
            symbol=str(wire.get("coin")),
            side=Side.BUY if wire.get("side") == "B" else Side.SELL,
            qty=orig,
            tif=_TIF_BACK.get(str(wire.get("tif")), TimeInForce.GTC),
            reduce_only=bool(wire.get("reduceOnly", False)),
            oid=str(_int(wire.get("oid"), "oid")),
            filled=orig - _dec(wire.get("sz"), "sz"),
        )

    async def _request(self, command: Any) -> list[Event]:
        now = self.clock.now()
        if isinstance(command, RequestOpenOrders):
            rows = _list(
                await self._info({"type": "frontendOpenOrders", "user": self.account}),
                "frontendOpenOrders",
            )
            orders = []
            for row in rows:
                wire = _obj(row, "open order")
                record = self._record_from_wire(wire)
                cloid = self._our_cloid(wire.get("cloid")) or f"oid:{record.oid}"
                self._orders.setdefault(cloid, record)
                orders.append(
                    OpenOrder(
                        cloid=cloid,
                        venue_order_id=record.oid or "",
                        symbol=record.symbol,
                        side=record.side,
                        position_side=PositionSide.BOTH,
                        price=_dec(wire.get("limitPx"), "limitPx"),
                        qty=record.qty,
                        filled_qty=record.filled,
                    )
                )
            return [
                OpenOrdersReported(
                    ts=now, venue=self.name, orders=tuple(orders), command_id=command.command_id
                )
            ]
        if isinstance(command, RequestPositions | RequestBalances):
            state = _obj(
                await self._info({"type": "clearinghouseState", "user": self.account}),
                "clearinghouseState",
            )
            if isinstance(command, RequestBalances):
                summary = _obj(state.get("marginSummary"), "marginSummary")
                return [
                    BalanceReported(
                        ts=now,
                        venue=self.name,
                        asset="USDC",
                        equity=_dec(summary.get("accountValue"), "accountValue"),
                        available=_dec(state.get("withdrawable"), "withdrawable"),
                        command_id=command.command_id,
                    )
                ]
            positions = []
            for row in _list(state.get("assetPositions"), "assetPositions"):
                pos = _obj(_obj(row, "assetPosition").get("position"), "position")
                qty = _dec(pos.get("szi"), "szi")
                if qty:
                    positions.append(
                        PositionReport(
                            symbol=str(pos.get("coin")),
                            position_side=PositionSide.BOTH,
                            qty=qty,
                            entry_price=_dec(pos.get("entryPx"), "entryPx"),
                        )
                    )
            return [
                PositionsReported(
                    ts=now,
                    venue=self.name,
                    positions=tuple(positions),
                    command_id=command.command_id,
                )
            ]
        if isinstance(command, RequestFills):
            fills = await self._fills_since(command.since)
            unique = {f.fill_id: f for f in fills}
            return [
                FillsReported(
                    ts=now,
                    venue=self.name,
                    since=command.since,
                    fills=tuple(unique.values()),
                    command_id=command.command_id,
                )
            ]
        if isinstance(command, RequestOrderStatus):
            answer = _obj(
                await self._info(
                    {
                        "type": "orderStatus",
                        "user": self.account,
                        "oid": self._venue_cloid(command.cloid),
                    }
                ),
                "orderStatus",
            )
            if answer.get("status") != "order":
                return [
                    OrderStatusReported(
                        ts=now,
                        venue=self.name,
                        cloid=command.cloid,
                        status=ReportedStatus.NOT_FOUND,
                        command_id=command.command_id,
                    )
                ]
            body = _obj(answer.get("order"), "order")
            record = self._record_from_wire(_obj(body.get("order"), "order.order"))
            return [
                OrderStatusReported(
                    ts=now,
                    venue=self.name,
                    cloid=command.cloid,
                    status=_status(str(body.get("status"))),
                    venue_order_id=record.oid,
                    filled_qty=record.filled,
                    command_id=command.command_id,
                )
            ]
        if isinstance(command, RequestFunding):
            payments = [
                p
                for p in await self._funding_since(command.since)
                if p.ts >= command.since and command.symbol in (None, p.symbol)
            ]
            return [
                FundingReported(
                    ts=now,
                    venue=self.name,
                    since=command.since,
                    payments=tuple(sorted(payments, key=lambda p: (p.ts, p.symbol))),
                    command_id=command.command_id,
                )
            ]
        raise VenueError(
            f"{self.name}: cannot carry out {type(command).__name__}", not_applied=True
        )

    async def _fills_since(self, since: int) -> list[Fill]:
        """Every fill from ``since`` on, paging ``userFillsByTime`` at 2,000 per answer."""
        out: list[Fill] = []
        start = since
        while True:
            page = _list(
                await self._info(
                    {
                        "type": "userFillsByTime",
                        "user": self.account,
                        "startTime": start,
                        "endTime": None,
                        "aggregateByTime": False,
                    }
                ),
                "userFillsByTime",
            )
            out.extend(self._fill(_obj(row, "fill")) for row in page)
            if len(page) < FILLS_PAGE:
                return out
            last = max(_int(_obj(row, "fill").get("time"), "time") for row in page)
            if last <= start:  # 2,000 fills in one ms: cannot page further by time
                return out
            start = last  # the page boundary's ms is fetched again; the caller dedups

    async def _funding_since(self, since: int) -> list[FundingPaid]:
        """Every funding payment from ``since`` on, paging ``userFunding`` at
        :data:`FUNDING_PAGE` per answer, deduplicated by payment id.

        The venue pays every coin at the same millisecond, so a page may end inside one: the
        next page starts *at* the last time seen (not after it) and the overlap is dropped by
        payment id; a full page all inside that millisecond steps one past it. A full page that
        brings nothing new otherwise ends the walk, so a venue that answers the same page again
        (or ignores ``startTime``) cannot keep it looping."""
        found: dict[str, FundingPaid] = {}
        start = since
        while True:
            page = _list(
                await self._info({"type": "userFunding", "user": self.account, "startTime": start}),
                "userFunding",
            )
            payments = [self._payment(_obj(row, "funding")) for row in page]
            new = [p for p in payments if p.payment_id not in found]
            found.update((p.payment_id, p) for p in new)
            if len(page) < FUNDING_PAGE:
                return list(found.values())
            last = max(p.ts for p in payments)
            if new:
                start = last if last > start else start + 1
            elif last == start:
                start += 1  # a full page inside the ms it restarted at: step past that ms
            else:
                return list(found.values())  # the same page again: nothing more to learn

    def _payment(self, row: dict[str, Any]) -> FundingPaid:
        """One payment, from either shape the venue uses: ``userFunding`` answers nest it
        (``{time, hash, delta: {type, coin, usdc, szi, fundingRate, nSamples}}``), the
        ``userFundings`` stream does not (``{time, coin, usdc, szi, fundingRate}``). The
        identity is ``<time>:<coin>`` on both (the venue gives funding rows no hash of their
        own), so a payment seen on the stream and again in the history is booked once (failure
        `double-counted-funding`). ``usdc`` is what the account received: positive when it was
        paid, negative when it paid, the core's sign as is."""
        ts = _int(row.get("time"), "funding.time")
        delta = _obj(row.get("delta", row), "funding.delta")
        coin = delta.get("coin")
        if not isinstance(coin, str) or not coin:
            raise _Malformed(f"funding.coin: {coin!r} is not a coin")
        for key in ("szi", "fundingRate"):  # not booked, but a payment with junk is not one
            if key in delta:
                _dec(delta[key], f"funding.{key}")
        return FundingPaid(
            ts=ts,
            venue=self.name,
            symbol=coin,
            position_side=PositionSide.BOTH,
            amount=_dec(delta.get("usdc"), "funding.usdc"),
            payment_id=f"{ts}:{coin}",
        )

    def _fill(self, row: dict[str, Any]) -> Fill:
        oid = _int(row.get("oid"), "fill.oid")
        return Fill(
            ts=_int(row.get("time"), "fill.time"),
            venue=self.name,
            symbol=str(row.get("coin")),
            fill_id=f"{oid}:{_int(row.get('tid'), 'fill.tid')}",
            cloid=self._our_cloid(row.get("cloid")),
            venue_order_id=str(oid),
            side=Side.BUY if row.get("side") == "B" else Side.SELL,
            position_side=PositionSide.BOTH,
            price=_dec(row.get("px"), "fill.px"),
            qty=_dec(row.get("sz"), "fill.sz"),
            fee=_dec(row.get("fee"), "fill.fee"),
            is_maker=not bool(row.get("crossed")),
        )

    # --- the stream -----------------------------------------------------------------------------

    def _subscriptions(self) -> list[dict[str, Any]]:
        subs: list[dict[str, Any]] = [
            {"type": "orderUpdates", "user": self.account},
            {"type": "userFills", "user": self.account},
            {"type": "userFundings", "user": self.account},
        ]
        for coin in self.coins:
            subs.append({"type": "bbo", "coin": coin})
            subs.append({"type": "activeAssetCtx", "coin": coin})
        return subs

    async def run(self, sink: Sink) -> None:
        """Stream until cancelled, reconnecting with the fill guarantor, and keep the dead-man
        switch armed meanwhile when ``dead_man_ms`` is set (module docstring)."""
        if self.dead_man_ms is None:
            await self._stream(sink)
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keep_dead_man)
            await self._stream(sink)

    async def arm_dead_man(self) -> bool:
        """Arm (or push back) the venue's ``scheduleCancel`` to ``now + dead_man_ms``. False
        when the venue refused it (too early, the day's trigger budget spent) or it failed; the
        reason is logged."""
        assert self.dead_man_ms is not None
        action = {"type": "scheduleCancel", "time": self.clock.now() + self.dead_man_ms}
        try:
            await self._action(action)
        except (VenueError, TransportError, _Malformed) as exc:
            self.dead_man_failures += 1
            _log.warning("%s: dead-man switch not armed: %s", self.name, exc)
            return False
        self.dead_man_armed += 1
        return True

    async def disarm_dead_man(self) -> bool:
        """Clear the venue's ``scheduleCancel`` (a clean stop: the operator decides what rests).
        The action carries no ``time`` key at all, as the venue's SDK sends it. False (logged)
        when it failed: the switch then fires at its time."""
        try:
            await self._action({"type": "scheduleCancel"})
        except (VenueError, TransportError, _Malformed) as exc:
            _log.warning("%s: dead-man switch not cleared: %s", self.name, exc)
            return False
        return True

    async def _keep_dead_man(self) -> None:
        assert self.dead_man_ms is not None
        refresh = self.dead_man_ms // 3
        while True:
            armed = await self.arm_dead_man()
            self._sleeps += 1
            wait = refresh if armed else min(refresh, _RETRY_DEAD_MAN_MS)
            await self.clock.sleep_until(self.clock.now() + wait, (K_RUNTIME, 5, self._sleeps))

    async def _stream(self, sink: Sink) -> None:
        while True:
            reason = "stream closed"
            try:
                async with trio_websocket.open_websocket_url(
                    self.ws_url, connect_timeout=self.http_timeout_s
                ) as ws:
                    await self._session(ws, sink)
            except trio_websocket.ConnectionClosed as exc:
                reason = f"stream closed: {exc.reason}"
            except (OSError, trio_websocket.HandshakeError, trio.TooSlowError) as exc:
                reason = f"cannot connect: {exc!r}"
            except (VenueError, TransportError) as exc:
                reason = f"resync failed: {exc}"
            await sink.emit(FeedDisconnected(ts=self.clock.now(), venue=self.name, reason=reason))
            self._sleeps += 1
            await self.clock.sleep_until(
                self.clock.now() + self.reconnect_delay_ms(), (K_RUNTIME, 3, self._sleeps)
            )

    def reconnect_delay_ms(self) -> int:
        """The wait before the next connection attempt: ``reconnect_ms``, doubling with every
        attempt that did not get the stream up, at most ``max_reconnect_ms`` (the venue allows
        only a few new connections a minute per IP)."""
        delay: int = min(self.max_reconnect_ms, self.reconnect_ms << min(self._failures, 16))
        self._failures += 1
        return delay

    async def _session(self, ws: trio_websocket.WebSocketConnection, sink: Sink) -> None:
        subs = self._subscriptions()
        for sub in subs:
            await ws.send_message(json.dumps({"method": "subscribe", "subscription": sub}))
        pending = [json.dumps(s, sort_keys=True) for s in subs]
        early: list[Any] = []
        while pending:
            text = await ws.get_message()
            message = self._parse(text)
            if message is None:
                await sink.emit(self._malformed(text, "not a JSON object with a channel"))
                continue
            if message.get("channel") == "subscriptionResponse":
                data = message.get("data")
                acked = data.get("subscription") if isinstance(data, dict) else None
                key = json.dumps(acked, sort_keys=True)
                if key in pending:
                    pending.remove(key)
                continue
            early.append((text, message))
        await self._guarantee(sink)
        self._failures = 0  # the stream is up: the next outage starts from reconnect_ms
        await sink.emit(FeedReconnected(ts=self.clock.now(), venue=self.name))
        for text, message in early:
            await self._dispatch(text, message, sink)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pinger, ws)
                while True:
                    await self.on_text(await ws.get_message(), sink)
        except BaseExceptionGroup as group:
            # The stream's own end (a closed socket) surfaces alone, not wrapped.
            raise _leaf(group) from None

    async def _pinger(self, ws: trio_websocket.WebSocketConnection) -> None:
        while True:
            self._sleeps += 1
            await self.clock.sleep_until(self.clock.now() + 50_000, (K_RUNTIME, 4, self._sleeps))
            with contextlib.suppress(trio_websocket.ConnectionClosed):
                await ws.send_message(json.dumps({"method": "ping"}))

    async def _guarantee(self, sink: Sink) -> None:
        """The fill guarantor: fills and funding since the last seen, then the open orders and
        positions as pushed snapshots."""
        try:
            for fill in await self._fills_since(self._last_fill_ts):
                await self._emit_fill(fill, sink)
            for payment in await self._funding_since(self._last_funding_ts):
                await self._emit_funding(payment, sink)
            for row in _list(
                await self._info({"type": "frontendOpenOrders", "user": self.account}),
                "frontendOpenOrders",
            ):
                wire = _obj(row, "open order")
                cloid = self._our_cloid(wire.get("cloid"))
                if cloid is not None:
                    self._orders[cloid] = self._record_from_wire(wire)
            # Pushed snapshots of open orders and positions (no command asked for them): the
            # core applies what they prove at once and still resynchronises by request.
            for request in (
                RequestOpenOrders(command_id=1, venue=self.name),
                RequestPositions(command_id=1, venue=self.name),
            ):
                for event in await self._request(request):
                    pushed: Event = _evolve(event, command_id=None)
                    await sink.emit(pushed)
        except (_Malformed, InvalidEvent) as exc:
            await sink.emit(
                MessageMalformed(
                    ts=self.clock.now(),
                    venue=self.name,
                    detail=f"resync: {exc}; answer: {_ANSWER.get()}",
                    source=Source.REST,
                )
            )

    async def on_text(self, text: str | bytes, sink: Sink) -> None:
        """One stream message, as the live loop receives it: events for what it says, a
        ``MessageMalformed`` carrying the raw text for what cannot be read (never an
        exception: failure `malformed-message-crash`)."""
        message = self._parse(text)
        if message is None:
            await sink.emit(self._malformed(text, "not a JSON object with a channel"))
            return
        await self._dispatch(text, message, sink)

    def _parse(self, text: str | bytes) -> dict[str, Any] | None:
        try:
            message = json.loads(text)
        except ValueError:
            return None
        if not isinstance(message, dict) or "channel" not in message:
            return None
        return message

    def _malformed(self, text: str | bytes, why: str) -> MessageMalformed:
        shown = text if isinstance(text, str) else text.decode(errors="replace")
        return MessageMalformed(
            ts=self.clock.now(), venue=self.name, detail=f"{why}: {shown[:200]}"
        )

    async def _dispatch(self, text: str | bytes, message: dict[str, Any], sink: Sink) -> None:
        channel = message["channel"]
        try:
            data = message.get("data")
            if channel == "bbo":
                if not self._quiet:
                    event = self._quote(_obj(data, "bbo"))
                    if event is not None:
                        await sink.emit(event)
            elif channel == "userFills":
                body = _obj(data, "userFills")
                for row in _list(body.get("fills"), "fills"):
                    await self._emit_fill(self._fill(_obj(row, "fill")), sink)
            elif channel == "orderUpdates":
                for row in _list(data, "orderUpdates"):
                    update = self._order_update(_obj(row, "order update"))
                    if update is not None:
                        await sink.emit(update)
            elif channel == "userFundings":
                body = _obj(data, "userFundings")
                for row in _list(body.get("fundings"), "fundings"):
                    await self._emit_funding(self._payment(_obj(row, "funding")), sink)
            elif channel == "activeAssetCtx":
                if not self._quiet:
                    await sink.emit(self._funding_rate(_obj(data, "activeAssetCtx")))
            elif channel == "error":
                raise _Malformed(f"the venue refused a message: {data!r}")
            # pong, subscriptionResponse, post and channels not subscribed to: nothing to say.
        except (_Malformed, InvalidEvent) as exc:
            await sink.emit(self._malformed(text, f"{channel}: {exc}"))

    def _quote(self, data: dict[str, Any]) -> QuoteTicked | None:
        coin = str(data.get("coin"))
        levels = _list(data.get("bbo"), "bbo.bbo")
        if len(levels) != 2:
            raise _Malformed("bbo must have two levels")
        if levels[0] is None or levels[1] is None:
            return None  # one side of the book is empty: no quote to give
        bid = _dec(_obj(levels[0], "bid").get("px"), "bid.px")
        ask = _dec(_obj(levels[1], "ask").get("px"), "ask.px")
        if not 0 < bid < ask:
            raise _Malformed(f"bbo {bid}/{ask} is not a quote")
        return QuoteTicked(
            ts=_int(data.get("time"), "bbo.time"), venue=self.name, symbol=coin, bid=bid, ask=ask
        )

    def _order_update(self, row: dict[str, Any]) -> Event | None:
        order = _obj(row.get("order"), "order")
        status = str(row.get("status"))
        ts = _int(row.get("statusTimestamp"), "statusTimestamp")
        oid = str(_int(order.get("oid"), "oid"))
        cloid = self._our_cloid(order.get("cloid"))
        if cloid is None:
            return None  # not placed by gridcore (no cloid): the core reconciles it by report
        known = self._orders.get(cloid)
        reported = _status(status)
        if reported is ReportedStatus.CANCELED and known is not None and known.oid is not None:
            replaced = known.oid != oid or cloid in self._modifying
            if replaced:
                return None  # the old oid of a modify (cancel-replace): the order lives on
        if known is not None:
            known.oid = oid
        if status == "open":
            return OrderAccepted(ts=ts, venue=self.name, cloid=cloid, venue_order_id=oid)
        if reported is ReportedStatus.CANCELED:
            return OrderCanceled(
                ts=ts, venue=self.name, cloid=cloid, venue_order_id=oid, reason=status
            )
        if reported is ReportedStatus.REJECTED:
            return OrderRejected(ts=ts, venue=self.name, cloid=cloid, reason=status)
        return None  # filled: the fills say it; triggered: still working

    async def _emit_fill(self, fill: Fill, sink: Sink) -> None:
        if fill.fill_id in self._seen_fills or fill.ts < self._last_fill_ts - _HOUR_MS:
            return
        record = self._orders.get(fill.cloid or "")
        filled = fill.qty if record is None else record.filled + fill.qty
        done = record is not None and filled >= record.qty
        kind = OrderFilled if done else OrderPartiallyFilled
        await sink.emit(kind(ts=fill.ts, fill=fill, source=Source.STREAM))
        # Seen only once sent: a send cut short (a stop cancelling the feed while the channel
        # is full) leaves the fill owed, so the next resync or snapshot emits it again instead
        # of skipping it as seen (failure `missed-fills-on-reconnect`). A send cancelled after
        # the reducer took the event makes the retry a duplicate, which the core's dedup by
        # fill id absorbs.
        self._seen_fills.add(fill.fill_id)
        self._last_fill_ts = max(self._last_fill_ts, fill.ts)
        if record is not None:
            record.filled = filled

    async def _emit_funding(self, payment: FundingPaid, sink: Sink) -> None:
        if payment.payment_id in self._seen_funding or payment.ts < self._last_funding_ts:
            return
        await sink.emit(payment)
        # Seen only once sent, as a fill (above): a cancelled send leaves the payment owed.
        self._seen_funding.add(payment.payment_id)
        self._last_funding_ts = max(self._last_funding_ts, payment.ts)

    def _funding_rate(self, data: dict[str, Any]) -> FundingRateUpdated:
        ctx = _obj(data.get("ctx"), "ctx")
        now = self.clock.now()
        return FundingRateUpdated(
            ts=now,
            venue=self.name,
            symbol=str(data.get("coin")),
            rate=_dec(ctx.get("funding"), "ctx.funding"),
            next_funding_ts=now - now % _HOUR_MS + _HOUR_MS,
        )

"""A fuzz of malformed Hyperliquid messages (failure `malformed-message-crash`).

Real message shapes (every WebSocket channel the adapter handles and every HTTP answer it maps)
are mutated with a seeded generator: wrong types, missing keys, NaN / infinity / huge /
negative numbers, extra nesting, truncated JSON, non-JSON bytes. Each goes through the entry
point the live loop uses (``on_text`` for the stream; ``execute`` and the reconnect's fill
guarantor over an HTTP transport that answers with the mutated body). No exception may escape
(``execute`` may raise only the contract's ``VenueError``/``TransportError`` for a lone
command), every result is a valid event, an unreadable one is a ``MessageMalformed`` carrying
the raw text, and the core steps every event without raising.

Then a smaller number go over a real WebSocket from the fake to a running runtime: it survives
them all and ends consistent.

``GRIDCORE_VENUE_FUZZ_MESSAGES`` (default 12,000) sets the number of mutated messages; the ``fuzz``
nox session runs many more.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import typing
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from gridcore import step
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
from gridcore.core import State
from gridcore.events import Event, FundingReported, MessageMalformed
from gridcore.instruments import PositionSide, Side, TimeInForce
from gridcore.invariants import check_state
from gridcore.shells.journal import Journal, recover
from gridcore.shells.runtime import Clock, Runtime, RuntimeOptions, Sink, WallClock
from gridcore.shells.strategies import load_config
from gridcore.shells.venue import TransportError, VenueError
from gridcore.shells.venues.hyperliquid import adapter as adapter_module
from gridcore.shells.venues.hyperliquid.adapter import HyperliquidAdapter, WeightLimiter
from gridcore.shells.venues.hyperliquid.cli import DEMO_TOML
from gridcore.shells.venues.hyperliquid.fake import HyperliquidFake
from gridcore.shells.venues.hyperliquid.nonces import NonceAllocator
from gridcore.shells.venues.hyperliquid.signing import address_of
from gridcore.sim import make_bot

KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"  # SDK test key
ADDRESS = address_of(KEY)
EXAMPLES = int(os.environ.get("GRIDCORE_VENUE_FUZZ_MESSAGES", "12000"))
OVER_THE_WIRE = 200
SEED = 20_261_130
T0 = 1_790_000_000_000
CLOID = "0x" + "ab" * 16
EVENT_KINDS = typing.get_args(Event)


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


# --- real message shapes --------------------------------------------------------------------


def _order_wire(status: str) -> dict[str, Any]:
    return {
        "order": {
            "coin": "ETH",
            "side": "B",
            "limitPx": "3190.1",
            "sz": "0.01",
            "oid": 17,
            "timestamp": T0,
            "origSz": "0.02",
            "cloid": CLOID,
        },
        "status": status,
        "statusTimestamp": T0 + 5,
    }


def _fill_wire(tid: int) -> dict[str, Any]:
    return {
        "coin": "ETH",
        "px": "3190.1",
        "sz": "0.01",
        "side": "B",
        "time": T0 + tid,
        "startPosition": "0",
        "dir": "Open Long",
        "closedPnl": "0",
        "hash": "0x" + "0" * 64,
        "oid": 17,
        "crossed": False,
        "fee": "0.0047",
        "tid": tid,
        "cloid": CLOID,
        "feeToken": "USDC",
    }


def _open_order_wire() -> dict[str, Any]:
    wire: dict[str, Any] = dict(_order_wire("open")["order"])
    wire.update({"orderType": "Limit", "tif": "Gtc", "reduceOnly": False, "isTrigger": False})
    return wire


STREAM: list[dict[str, Any]] = [
    {
        "channel": "bbo",
        "data": {
            "coin": "ETH",
            "time": T0,
            "bbo": [{"px": "3199.9", "sz": "10", "n": 3}, {"px": "3200.1", "sz": "10", "n": 3}],
        },
    },
    {"channel": "bbo", "data": {"coin": "ETH", "time": T0, "bbo": [None, None]}},
    {
        "channel": "l2Book",
        "data": {
            "coin": "ETH",
            "time": T0,
            "levels": [
                [{"px": "3199.9", "sz": "1", "n": 1}],
                [{"px": "3200.1", "sz": "1", "n": 1}],
            ],
        },
    },
    *(
        {"channel": "orderUpdates", "data": [_order_wire(status)]}
        for status in ("open", "filled", "canceled", "scheduledCancel", "rejected", "triggered")
    ),
    {"channel": "userFills", "data": {"user": ADDRESS, "fills": [_fill_wire(1), _fill_wire(2)]}},
    {
        "channel": "userFills",
        "data": {"user": ADDRESS, "fills": [_fill_wire(3)], "isSnapshot": True},
    },
    {
        "channel": "userFundings",
        "data": {
            "user": ADDRESS,
            "fundings": [
                {
                    "time": T0,
                    "coin": "ETH",
                    "usdc": "-0.0123",
                    "szi": "0.01",
                    "fundingRate": "0.0000125",
                }
            ],
            "isSnapshot": True,
        },
    },
    {
        "channel": "userFundings",
        "data": {
            "user": ADDRESS,
            "fundings": [
                {"time": T0, "delta": {"type": "funding", "coin": "ETH", "usdc": "0.5", "szi": "1"}}
            ],
        },
    },
    {
        "channel": "activeAssetCtx",
        "data": {"coin": "ETH", "ctx": {"funding": "0.0000125", "markPx": "3200", "oraclePx": "1"}},
    },
    {
        "channel": "subscriptionResponse",
        "data": {"method": "subscribe", "subscription": {"type": "bbo", "coin": "ETH"}},
    },
    {"channel": "pong"},
    {"channel": "error", "data": "Invalid message"},
    {"channel": "allMids", "data": {"mids": {"ETH": "3200"}}},
    {
        "channel": "post",
        "data": {"id": 1, "response": {"type": "action", "payload": {"status": "ok"}}},
    },
]

INFO: dict[str, Any] = {
    "frontendOpenOrders": [_open_order_wire()],
    "clearinghouseState": {
        "marginSummary": {"accountValue": "1000.5", "totalMarginUsed": "10"},
        "withdrawable": "990",
        "assetPositions": [
            {"type": "oneWay", "position": {"coin": "ETH", "szi": "-0.02", "entryPx": "3190"}}
        ],
    },
    "userFillsByTime": [_fill_wire(4), _fill_wire(5)],
    "userFunding": [
        {
            "time": T0,
            "hash": "0x" + "0" * 64,
            "delta": {
                "type": "funding",
                "coin": "ETH",
                "usdc": "-0.1",
                "szi": "0.02",
                "fundingRate": "0.0000125",
                "nSamples": None,
            },
        },
        {"time": T0 + 1, "delta": {"type": "funding", "coin": "BTC", "usdc": "0.3", "szi": "-1"}},
    ],
    "orderStatus": {"status": "order", "order": _order_wire("open")},
}

EXCHANGE: list[dict[str, Any]] = [
    {
        "status": "ok",
        "response": {"type": "order", "data": {"statuses": [{"resting": {"oid": 7}}]}},
    },
    {
        "status": "ok",
        "response": {
            "type": "order",
            "data": {"statuses": [{"filled": {"totalSz": "0.01", "avgPx": "3200", "oid": 8}}]},
        },
    },
    {
        "status": "ok",
        "response": {
            "type": "order",
            "data": {"statuses": [{"error": "Order must have minimum value of $10."}]},
        },
    },
    {"status": "ok", "response": {"type": "cancel", "data": {"statuses": ["success"]}}},
    {
        "status": "ok",
        "response": {
            "type": "cancel",
            "data": {
                "statuses": [{"error": "Order was never placed, already canceled, or filled."}]
            },
        },
    },
    {"status": "err", "response": "Invalid nonce: duplicate nonce 1790000000000"},
    {"status": "ok", "response": {"type": "order", "data": {"statuses": ["waitingForFill"]}}},
]


# --- the mutator ------------------------------------------------------------------------------

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**64,
    -(10**30),
    1e308,
    -1e-300,
    float("nan"),
    float("inf"),
    float("-inf"),
    "NaN",
    "Infinity",
    "-0",
    "1e999999",
    "-3200",
    "",
    "abc",
    "0x" + "f" * 64,
    [],
    {},
    [[[]]],
    {"a": {"b": {}}},
    "x" * 500,
]


def _odd(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(ODD_VALUES))  # a fresh copy: never mutate the pool


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*path, index))


def _mutate_tree(rng: random.Random, tree: Any) -> Any:
    tree = copy.deepcopy(tree)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(tree) if p]
        if not paths:
            return _odd(rng)
        path = rng.choice(paths)
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        action = rng.random()
        if action < 0.55:
            parent[last] = _odd(rng)
        elif action < 0.7 and isinstance(parent, dict):
            del parent[last]
        elif action < 0.85:
            parent[last] = rng.choice([[parent[last]], {"x": parent[last]}])
        elif isinstance(parent, dict):
            parent["extra" + str(rng.randint(0, 9))] = _odd(rng)
        else:
            parent.append(copy.deepcopy(rng.choice([parent[last], *ODD_VALUES])))
    return tree


def mutate(rng: random.Random, shape: Any) -> str | bytes:
    """One malformed (or occasionally intact) rendering of ``shape``."""
    roll = rng.random()
    if roll < 0.08:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
    text = json.dumps(shape if roll < 0.12 else _mutate_tree(rng, shape))
    if roll < 0.2:
        return text[: rng.randint(0, len(text))]  # truncated JSON
    return text


# --- running the adapter on mutated input -----------------------------------------------------


class _Collect(Sink):
    def __init__(self) -> None:
        self.events: list[Event] = []
        self._clock = WallClock()

    @property
    def clock(self) -> Clock:
        return self._clock

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        raise AssertionError("the adapter spawns nothing here")

    def stop(self, reason: str) -> None:
        raise AssertionError(f"stopped: {reason}")


def _adapter(transport: httpx.AsyncBaseTransport | None = None) -> HyperliquidAdapter:
    clock = WallClock()
    return HyperliquidAdapter(
        base_url="http://fuzz.invalid",
        private_key=KEY,
        mainnet=False,
        coins=("ETH",),
        clock=clock,
        nonces=NonceAllocator(signer=ADDRESS, now_ms=clock.now, path=None),
        fills_since=T0 - 1,
        transport=transport,
        # No waiting in the fuzz: the request budget and the 429 back-off are not under test.
        limiter=WeightLimiter(capacity=10**9, backoff_ms=0, max_backoff_ms=0),
    )


def _valid(events: list[Event], raw: str | bytes | None) -> None:
    for event in events:
        assert isinstance(event, EVENT_KINDS), event
        if isinstance(event, MessageMalformed) and raw is not None:
            shown = raw if isinstance(raw, str) else raw.decode(errors="replace")
            assert shown[:100] in event.detail, (event.detail, shown)


def _step_all(state: State[Any], events: list[Event]) -> State[Any]:
    for event in events:
        state, _ = step(state, event)  # raises on a broken contract: the fuzz fails
    return state


def _commands() -> list[Any]:
    place = PlaceOrder(
        command_id=1,
        venue="hyperliquid",
        symbol="ETH",
        cloid=CLOID,
        side=Side.BUY,
        position_side=PositionSide.BOTH,
        qty=Decimal("0.01"),
        price=Decimal("3190.1"),
        tif=TimeInForce.GTC,
    )
    cancel = CancelOrder(command_id=2, venue="hyperliquid", symbol="ETH", cloid=CLOID)
    modify = ModifyOrder(
        command_id=3,
        venue="hyperliquid",
        symbol="ETH",
        cloid=CLOID,
        venue_order_id="17",
        price=Decimal("3191"),
        qty=Decimal("0.01"),
    )
    return [
        place,
        cancel,
        modify,
        Batch(command_id=4, venue="hyperliquid", commands=(place, cancel)),
        RequestOpenOrders(command_id=5, venue="hyperliquid"),
        RequestPositions(command_id=6, venue="hyperliquid"),
        RequestBalances(command_id=7, venue="hyperliquid"),
        RequestFills(command_id=8, venue="hyperliquid", since=T0),
        RequestOrderStatus(command_id=9, venue="hyperliquid", symbol="ETH", cloid=CLOID),
        RequestFunding(command_id=10, venue="hyperliquid", since=T0),
        RequestFunding(command_id=11, venue="hyperliquid", since=T0, symbol="ETH"),
    ]


@pytest.mark.anyio
async def test_mutated_venue_messages_become_events_never_exceptions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The signature is not under test and costs milliseconds: a fixed one keeps the fuzz cheap.
    monkeypatch.setattr(adapter_module, "sign_l1_action", lambda *a, **k: {"r": "0x1", "s": "0x1"})
    rng = random.Random(SEED)
    state: State[Any] = make_bot(load_config(DEMO_TOML, source="demo"), epoch=T0, nonce=1)
    meta = {"universe": [{"name": "ETH", "szDecimals": 4, "maxLeverage": 20}]}
    answer: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/info" and body["type"] == "meta":
            return httpx.Response(200, json=meta)
        return httpx.Response(answer["status"], content=answer["body"])

    adapter = _adapter(httpx.MockTransport(handler))
    await adapter.connect()
    stream = EXAMPLES * 3 // 5
    counts = {"stream": 0, "rest": 0, "malformed": 0, "funding_reports": 0}
    try:
        for _ in range(stream):  # the stream
            raw = mutate(rng, rng.choice(STREAM))
            sink = _Collect()
            await adapter.on_text(raw, sink)
            _valid(sink.events, raw)
            state = _step_all(state, sink.events)
            counts["stream"] += 1
            counts["malformed"] += sum(isinstance(e, MessageMalformed) for e in sink.events)
        commands = _commands()
        for index in range(EXAMPLES - stream):  # HTTP answers, through execute and the guarantor
            answer["status"] = rng.choice([200] * 12 + [422, 429, 500, 502])
            if index % 10 == 0:
                shape: Any = rng.choice(list(INFO.values()))
                raw = mutate(rng, shape)
                answer["body"] = raw if isinstance(raw, bytes) else raw.encode()
                sink = _Collect()
                # The reconnect's fill guarantor; the contract's errors make the stream loop
                # reconnect and try again.
                with contextlib.suppress(VenueError, TransportError):
                    await adapter._guarantee(sink)
                events = sink.events
            else:
                command = rng.choice(commands)
                info = isinstance(command, RequestOpenOrders | RequestPositions | RequestBalances)
                info = info or isinstance(
                    command, RequestFills | RequestOrderStatus | RequestFunding
                )
                shape = rng.choice(list(INFO.values()) if info else EXCHANGE)
                raw = mutate(rng, shape)
                answer["body"] = raw if isinstance(raw, bytes) else raw.encode()
                try:
                    events = list(await adapter.execute(command))
                except (VenueError, TransportError):
                    assert not isinstance(command, Batch), "a batch never raises"
                    events = []
            _valid(events, None)
            for event in events:
                if isinstance(event, MessageMalformed):
                    assert "answer: " in event.detail  # the raw answer comes with it
            state = _step_all(state, events)
            counts["rest"] += 1
            counts["malformed"] += sum(isinstance(e, MessageMalformed) for e in events)
            counts["funding_reports"] += sum(isinstance(e, FundingReported) for e in events)
    finally:
        await adapter.close()
    assert counts["stream"] + counts["rest"] == EXAMPLES
    assert counts["malformed"] > EXAMPLES // 4, "the mutations reach the parser"
    assert counts["funding_reports"], "funding-history answers that survive are reported"


@pytest.mark.anyio
async def test_malformed_messages_over_a_real_websocket_do_not_stop_the_bot(
    fake: HyperliquidFake, tmp_path: Path
) -> None:
    rng = random.Random(SEED + 1)
    texts = [mutate(rng, rng.choice(STREAM)) for _ in range(OVER_THE_WIRE)]
    # The fake sends text frames: bytes become their (lossy) text.
    frames = [t if isinstance(t, str) else t.decode(errors="replace") for t in texts]
    config = load_config(DEMO_TOML, source="demo")
    clock = WallClock()
    state = make_bot(config, epoch=clock.now(), nonce=7)
    journal = Journal.create(tmp_path / "j.db", state=state, meta={"config": DEMO_TOML})
    adapter = HyperliquidAdapter(
        base_url=fake.url,
        private_key=KEY,
        mainnet=False,
        coins=("ETH",),
        clock=clock,
        nonces=NonceAllocator(signer=ADDRESS, now_ms=clock.now, path=None),
        reconnect_ms=100,
    )
    runtime = Runtime(
        state=state,
        journal=journal,
        venues=[adapter],
        clock=clock,
        options=RuntimeOptions(handle_signals=False),
    )
    unreadable = sum(_unreadable(f) for f in frames)

    def malformed() -> int:
        return sum(isinstance(e, MessageMalformed) for _, e in journal.events())

    async def push_then_stop() -> None:
        while not list(fake.exchange.open_orders()):
            await trio.sleep(0.05)  # the bot is up and trading
        fake.push_raw(*frames)
        with trio.move_on_after(120):  # a bound on waiting, not on speed
            while malformed() < unreadable:
                await trio.sleep(0.05)
        runtime.request_stop("test: done")

    await adapter.connect()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push_then_stop)
            final = await runtime.run()
    finally:
        await adapter.close()
    assert runtime.stats.stop_reason == "test: done", "the loop survived every message"
    assert malformed() >= unreadable > 0
    assert check_state(final) == [], "the bot's invariants hold"
    recovered, _ = recover(journal)
    assert recovered == final, "the journal folds to the state the run ended with"
    journal.close()


def _unreadable(frame: str) -> bool:
    """Frames that cannot even be parsed as a channel message: each must be journaled as one
    MessageMalformed."""
    try:
        message = json.loads(frame)
    except ValueError:
        return True
    return not isinstance(message, dict) or "channel" not in message

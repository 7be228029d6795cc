"""The adapter conformance suite catches broken adapters: a feed that raises or emits something
that is not an event, an ``execute`` that raises outside the declared errors or returns junk,
and a feed that never sends a quote all fail the suite with a message naming the fault; the
declared errors become the ``CommandFailed`` the runtime would make of them. Simulated time:
nothing depends on the machine's speed."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from gridcore.commands import PlaceOrder, RequestPositions
from gridcore.events import CommandFailed, Event, FeedReconnected, QuoteTicked
from gridcore.instruments import PositionSide, Side
from gridcore.shells.conformance import AdapterConformance, VenueUnderTest
from gridcore.shells.runtime import LockstepClock, Sink
from gridcore.shells.venue import ExecCommand, TransportError, VenueError

START = 1_700_000_000_000


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class _Control:
    def reject_next(self) -> None:
        raise AssertionError("not used")

    def lose_next_answer(self, *, applied: bool) -> None:
        raise AssertionError("not used")

    def disconnect_feed(self) -> None:
        raise AssertionError("not used")

    def send_malformed(self) -> None:
        raise AssertionError("not used")


class _Adapter:
    """A hand-made adapter; ``feed`` and ``answer`` say how it misbehaves."""

    name = "fake"

    def __init__(self, *, feed: str = "quotes", answer: Any = None) -> None:
        self.feed = feed
        self.answer = answer

    async def run(self, sink: Sink) -> None:
        await sink.emit(FeedReconnected(ts=sink.clock.now(), venue=self.name))
        match self.feed:
            case "raises":
                raise ValueError("unexpected field 'px'")
            case "junk":
                await sink.emit("px=1")  # type: ignore[arg-type]
            case "quotes":
                sink.spawn(self._quotes, sink)
                return
        await sink.clock.park()

    async def _quotes(self, sink: Sink) -> None:
        ts = sink.clock.now()
        await sink.emit(
            QuoteTicked(ts=ts, venue=self.name, symbol="X", bid=Decimal(1), ask=Decimal(2))
        )
        sink.stop("fake: market closed")

    def quiesce(self) -> None:
        pass

    async def execute(self, command: ExecCommand) -> Sequence[Event]:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer  # type: ignore[no-any-return]


class _Suite(AdapterConformance):
    def make_place(
        self, quote: QuoteTicked, *, command_id: int, cloid: str, side: Side, cross: bool
    ) -> PlaceOrder:
        return PlaceOrder(
            command_id=command_id,
            venue="fake",
            symbol=quote.symbol,
            cloid=cloid,
            side=side,
            position_side=PositionSide.BOTH,
            qty=Decimal(1),
            price=quote.bid,
        )


def _venue(adapter: _Adapter) -> VenueUnderTest:
    return VenueUnderTest(adapter=adapter, control=_Control(), clock=LockstepClock(START))


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside task-group exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        assert len(exc.exceptions) == 1, exc
        exc = exc.exceptions[0]
    return exc


async def _quote_and(adapter: _Adapter, command: ExecCommand | None = None) -> Any:
    venue = _venue(adapter)
    async with _Suite().running(venue) as h:
        quote = await h.quote()
        assert h.sink.clock is venue.clock
        answer = None if command is None else await h.execute(command)
        stopped = h.stopped
    return quote, answer, stopped


@pytest.mark.anyio
async def test_a_working_feed_is_recorded_and_its_stop_request_heard() -> None:
    quote, _, stopped = await _quote_and(_Adapter())
    assert quote.bid == 1 and quote.ask == 2
    assert stopped == "fake: market closed"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "not_applied"),
    [(VenueError("insufficient margin", not_applied=True), True), (TransportError("reset"), False)],
)
async def test_a_declared_error_is_the_command_failed_the_runtime_would_make(
    error: Exception, not_applied: bool
) -> None:
    command = RequestPositions(command_id=5, venue="fake")
    _, answer, _ = await _quote_and(_Adapter(answer=error), command)
    assert answer.raised is error
    failed = answer.result(5)
    assert START <= failed.ts <= START + _Suite.answer_within_ms  # on the simulated clock
    assert failed == CommandFailed(
        ts=failed.ts,
        command_id=5,
        reason=f"{type(error).__name__}: {error}",
        not_applied=not_applied,
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("adapter", "message"),
    [
        (_Adapter(feed="raises"), "run() raised ValueError: unexpected field 'px'"),
        (_Adapter(feed="junk"), "run() emitted 'px=1', not a gridcore event"),
        (_Adapter(feed="silent"), "fake: no quote within 50000 ms"),
    ],
)
async def test_a_broken_feed_fails_the_suite_naming_the_fault(
    adapter: _Adapter, message: str
) -> None:
    with pytest.raises(BaseException) as caught:
        await _quote_and(adapter)
    failure = _leaf(caught.value)
    assert isinstance(failure, pytest.fail.Exception)
    assert message in str(failure)


@pytest.mark.anyio
async def test_an_undeclared_exception_from_execute_fails_the_suite() -> None:
    command = RequestPositions(command_id=5, venue="fake")
    with pytest.raises(BaseException) as caught:
        await _quote_and(_Adapter(answer=KeyError("px")), command)
    failure = _leaf(caught.value)
    assert isinstance(failure, AssertionError)
    assert "fake: execute(RequestPositions) raised" in str(failure)


@pytest.mark.anyio
async def test_an_answer_that_is_not_events_fails_the_suite() -> None:
    command = RequestPositions(command_id=5, venue="fake")
    with pytest.raises(BaseException) as caught:
        await _quote_and(_Adapter(answer=["positions: none"]), command)
    failure = _leaf(caught.value)
    assert isinstance(failure, pytest.fail.Exception)
    assert "execute(RequestPositions) returned 'positions: none'" in str(failure)

"""The venue adapter conformance suite: the contract of :mod:`gridcore.shells.venue`, as tests.

Every adapter (a live venue, the simulated one) must pass it against its own fake venue. Use it
from your test suite (it needs ``pytest`` and ``anyio``; the core never imports it)::

    from gridcore.shells.conformance import AdapterConformance, VenueUnderTest

    class TestMyVenue(AdapterConformance):
        @pytest.fixture
        def venue(self, tmp_path):
            server = MyFakeServer()            # speaks the venue's wire protocol
            adapter = MyAdapter(url=server.url, clock=WallClock())
            return VenueUnderTest(adapter=adapter, control=server, clock=adapter.clock)

        def make_place(self, quote, *, command_id, cloid, side, cross):
            price = quote.ask if (side is Side.BUY) == cross else quote.bid  # then off the touch
            ...
            return PlaceOrder(...)

``control`` is the fake venue's remote control (:class:`FakeVenueControl`): it makes the venue
refuse the next command, lose an answer (having acted or not), drop the feed for a while, or
send an unreadable message. The suite drives the adapter directly (no journal, no core): it
runs ``adapter.run`` with a recording :class:`~gridcore.shells.runtime.Sink`, calls
``execute`` and checks what comes back. Each test waits on the adapter's clock, at most
``answer_within_ms`` for an answer and ``feed_within_ms`` for the feed; with a
:class:`~gridcore.shells.runtime.LockstepClock` that is simulated time, so no test depends on
the machine's speed.

An adapter's connections are opened and closed around the suite by the ``venue`` fixture (an
adapter that needs ``connect()`` calls it there; a yield fixture closes it).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, Protocol

import anyio
import anyio.abc
import attrs
import pytest

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
from gridcore.events import (
    BalanceReported,
    CancelRejected,
    CommandFailed,
    Event,
    FeedDisconnected,
    FeedReconnected,
    Fill,
    FillsReported,
    FundingReported,
    MessageMalformed,
    OpenOrdersReported,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatusReported,
    PositionsReported,
    QuoteTicked,
    ReportedStatus,
)
from gridcore.instruments import Side
from gridcore.shells.runtime import K_RUNTIME, Clock, Sink
from gridcore.shells.venue import ExecCommand, TransportError, VenueAdapter, VenueError

__all__ = ["AdapterConformance", "Answer", "FakeVenueControl", "Harness", "VenueUnderTest"]


class FakeVenueControl(Protocol):
    """The remote control of the fake venue behind the adapter under test."""

    def reject_next(self) -> None:
        """The venue refuses the next command outright: it certainly does not act on it."""
        ...

    def lose_next_answer(self, *, applied: bool) -> None:
        """The next command's answer never arrives (the adapter sees a timeout or nothing);
        ``applied``: the venue acted on it anyway; otherwise the request was lost on the way."""
        ...

    def disconnect_feed(self) -> None:
        """The stream drops now and comes back by itself a little later."""
        ...

    def send_malformed(self) -> None:
        """The next stream message is unreadable (garbage, a field missing, a bad number)."""
        ...


@attrs.frozen(kw_only=True)
class VenueUnderTest:
    """What the ``venue`` fixture returns: the adapter, its fake venue's control, its clock."""

    adapter: VenueAdapter
    control: FakeVenueControl
    clock: Clock


@attrs.frozen(kw_only=True)
class Answer:
    """What one ``execute`` call came back with: ``events`` (``None`` when nothing came within
    the time allowed) and ``raised``, the declared error it raised, if any (its events are then
    the ``CommandFailed`` the runtime would make of it)."""

    events: tuple[Event, ...] | None
    raised: VenueError | TransportError | None = None

    def results(self, command_id: int) -> list[Event]:
        """The events carrying ``command_id``."""
        return [e for e in self.events or () if getattr(e, "command_id", None) == command_id]

    def result(self, command_id: int) -> Event:
        """The one result for ``command_id`` (fails the test unless there is exactly one)."""
        found = self.results(command_id)
        assert len(found) == 1, f"command {command_id}: expected one result, got {found}"
        return found[0]


class _RecordingSink(Sink):
    """The sink the suite gives ``adapter.run``: records every event."""

    def __init__(self, harness: Harness) -> None:  # no runtime behind it
        self._harness = harness

    @property
    def clock(self) -> Clock:
        return self._harness.clock

    async def emit(self, event: Event) -> None:
        self._harness.record(event)
        await anyio.lowlevel.checkpoint()

    def send_now(self, event: Event) -> bool:
        self._harness.record(event)
        return True

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self._harness.spawn(fn, *args)

    def stop(self, reason: str) -> None:
        self._harness.stopped = reason


class Harness:
    """Runs one adapter for one test: its feed in a task, commands through :meth:`execute`."""

    def __init__(
        self, venue: VenueUnderTest, tg: anyio.abc.TaskGroup, *, answer_within_ms: int
    ) -> None:
        self.venue = venue
        self.adapter = venue.adapter
        self.clock = venue.clock
        self.events: list[Event] = []
        self.problems: list[str] = []
        self.stopped: str | None = None
        self.answer_within_ms = answer_within_ms
        self.sink = _RecordingSink(self)
        self._tg = tg
        self._keys = 0

    def record(self, event: Event) -> None:
        """One event from the adapter's stream."""
        if not isinstance(event, Event):
            self.problems.append(f"run() emitted {event!r}, not a gridcore event")
        self.events.append(event)

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start a task counted as work until it sleeps on the clock (as the runtime does)."""
        clock = self.clock
        clock.hold()

        async def held() -> None:
            try:
                await fn(*args)
            finally:
                clock.release()

        self._tg.start_soon(held)

    async def _feed(self) -> None:
        try:
            await self.adapter.run(self.sink)
        except Exception as exc:
            self.problems.append(
                f"run() raised {type(exc).__name__}: {exc} (venue data must become "
                f"MessageMalformed or feed events, never an exception)"
            )

    async def wait_for(self, done: Callable[[], bool], within_ms: int, what: str) -> None:
        """Sleep on the clock until ``done()`` holds; fail the test after ``within_ms``."""
        if not await self._until(done, within_ms):
            pytest.fail(f"{self.adapter.name}: no {what} within {within_ms} ms")

    async def _until(self, done: Callable[[], bool], within_ms: int) -> bool:
        clock = self.clock
        deadline = clock.now() + within_ms
        while not done():
            if self.problems:
                pytest.fail("; ".join(self.problems))
            now = clock.now()
            if now >= deadline:
                return False
            self._keys += 1
            await clock.sleep_until(min(now + 50, deadline), (K_RUNTIME, 1, self._keys))
        return True

    def since(self, index: int, kind: type[Any] | tuple[type[Any], ...]) -> list[Any]:
        """Events of type ``kind`` recorded from position ``index`` on."""
        return [e for e in self.events[index:] if isinstance(e, kind)]

    async def quote(self) -> QuoteTicked:
        """The latest quote (waits for the first one)."""
        await self.wait_for(
            lambda: bool(self.since(0, QuoteTicked)), self.answer_within_ms * 10, "quote"
        )
        quote: QuoteTicked = self.since(0, QuoteTicked)[-1]
        return quote

    async def execute(self, command: ExecCommand, within_ms: int | None = None) -> Answer:
        """Call ``adapter.execute(command)`` as the runtime does; an exception outside the
        declared vocabulary fails the test."""
        box: list[Answer] = []
        bugs: list[Exception] = []

        async def call() -> None:
            try:
                box.append(Answer(events=tuple(await self.adapter.execute(command))))
            except (VenueError, TransportError) as exc:
                inner = command.commands if isinstance(command, Batch) else (command,)
                failed = tuple(
                    CommandFailed(
                        ts=self.clock.now(),
                        command_id=c.command_id,
                        reason=f"{type(exc).__name__}: {exc}",
                        not_applied=exc.not_applied,
                    )
                    for c in inner
                )
                box.append(Answer(events=failed, raised=exc))
            except Exception as exc:
                bugs.append(exc)

        self.spawn(call)
        answered = await self._until(
            lambda: bool(box or bugs), self.answer_within_ms if within_ms is None else within_ms
        )
        if bugs:
            raise AssertionError(
                f"{self.adapter.name}: execute({type(command).__name__}) raised "
                f"{type(bugs[0]).__name__}: {bugs[0]}; an adapter may raise only VenueError or "
                f"TransportError"
            ) from bugs[0]
        if not answered:
            return Answer(events=None)
        answer = box[0]
        for event in answer.events or ():
            if not isinstance(event, Event):
                pytest.fail(f"execute({type(command).__name__}) returned {event!r}")
        return answer


_ANSWERS_TO_PLACE = (OrderAccepted, OrderRejected, CommandFailed)


class AdapterConformance:
    """The conformance tests. Subclass it as ``TestSomething``, provide the ``venue`` fixture
    and :meth:`make_place`; set ``anyio_backend`` if you need another one than asyncio."""

    answer_within_ms: ClassVar[int] = 5_000
    """Clock ms within which an answered command must come back."""
    feed_within_ms: ClassVar[int] = 60_000
    """Clock ms within which a feed event (a quote, a reconnect) must arrive."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def venue(self) -> VenueUnderTest:
        """The adapter under test, connected to a fresh fake venue with money and a market."""
        raise NotImplementedError("a conformance subclass provides the `venue` fixture")

    def make_place(
        self, quote: QuoteTicked, *, command_id: int, cloid: str, side: Side, cross: bool
    ) -> PlaceOrder:
        """A valid order for this venue (on tick and lot, above the minimum notional, within
        the fake account's margin): resting away from ``quote`` or, with ``cross``, crossing
        it so that it fills at once."""
        raise NotImplementedError("a conformance subclass provides make_place")

    @contextlib.asynccontextmanager
    async def running(self, venue: VenueUnderTest) -> AsyncIterator[Harness]:
        """The adapter with its feed running; everything is cancelled on exit."""
        clock = venue.clock
        clock.hold()  # the test's own unit of work (a lockstep clock waits for it)
        async with anyio.create_task_group() as tg:
            harness = Harness(venue, tg, answer_within_ms=self.answer_within_ms)
            tg.start_soon(clock.run)
            harness.spawn(harness._feed)
            yield harness
            assert harness.problems == []
            tg.cancel_scope.cancel()

    def _ids(self) -> Callable[[], int]:
        counter = iter(range(1, 1_000_000))
        return lambda: next(counter)

    def _place(self, quote: QuoteTicked, cid: int, *, cross: bool = False) -> PlaceOrder:
        return self.make_place(
            quote, command_id=cid, cloid=f"conf-{cid}", side=Side.BUY, cross=cross
        )

    # --- the feed -------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_the_feed_reports_itself_up_before_market_data(
        self, venue: VenueUnderTest
    ) -> None:
        async with self.running(venue) as h:
            await h.quote()
            name = h.adapter.name
            ups = [i for i, e in enumerate(h.events) if isinstance(e, FeedReconnected)]
            quotes = [i for i, e in enumerate(h.events) if isinstance(e, QuoteTicked)]
            assert ups, "run() must emit FeedReconnected once the stream is up"
            assert ups[0] < quotes[0]
            assert all(e.venue == name for e in h.since(0, FeedReconnected))
            assert all(e.venue == name for e in h.since(0, QuoteTicked))

    @pytest.mark.anyio
    async def test_a_feed_disconnect_and_reconnect_are_reported(
        self, venue: VenueUnderTest
    ) -> None:
        async with self.running(venue) as h:
            await h.quote()
            mark = len(h.events)
            venue.control.disconnect_feed()
            await h.wait_for(
                lambda: bool(h.since(mark, FeedDisconnected)), self.feed_within_ms, "disconnect"
            )
            down = h.events.index(h.since(mark, FeedDisconnected)[0], mark)
            await h.wait_for(
                lambda: bool(h.since(down, FeedReconnected)), self.feed_within_ms, "reconnect"
            )
            up = h.events.index(h.since(down, FeedReconnected)[0], down)
            await h.wait_for(
                lambda: bool(h.since(up, QuoteTicked)), self.feed_within_ms, "quote after it"
            )
            assert h.since(mark, FeedDisconnected)[0].venue == h.adapter.name
            assert h.since(down, FeedReconnected)[0].venue == h.adapter.name

    @pytest.mark.anyio
    async def test_malformed_venue_data_becomes_an_event(self, venue: VenueUnderTest) -> None:
        async with self.running(venue) as h:
            await h.quote()
            mark = len(h.events)
            venue.control.send_malformed()
            await h.wait_for(
                lambda: bool(h.since(mark, MessageMalformed)), self.feed_within_ms, "malformed"
            )
            bad = h.events.index(h.since(mark, MessageMalformed)[0], mark)
            assert h.events[bad].venue == h.adapter.name  # type: ignore[union-attr]
            # ... and the feed goes on.
            await h.wait_for(
                lambda: bool(h.since(bad, QuoteTicked)), self.feed_within_ms, "quote after it"
            )

    # --- commands ---------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_every_command_gets_exactly_one_terminal_result(
        self, venue: VenueUnderTest
    ) -> None:
        new = self._ids()
        async with self.running(venue) as h:
            quote = await h.quote()
            name = h.adapter.name
            a, b, c = (self._place(quote, new()) for _ in range(3))
            commands: list[ExecCommand] = [
                Batch(command_id=new(), venue=name, commands=(a, b)),
                c,
                CancelOrder(command_id=new(), venue=name, symbol=a.symbol, cloid=a.cloid),
                ModifyOrder(
                    command_id=new(),
                    venue=name,
                    symbol=b.symbol,
                    cloid=b.cloid,
                    venue_order_id=None,
                    price=b.price,
                    qty=b.qty,
                ),
                RequestOpenOrders(command_id=new(), venue=name),
                RequestPositions(command_id=new(), venue=name),
                RequestBalances(command_id=new(), venue=name),
                RequestFills(command_id=new(), venue=name, since=0),
                RequestOrderStatus(command_id=new(), venue=name, symbol=c.symbol, cloid=c.cloid),
            ]
            for command in commands:
                answer = await h.execute(command)
                kind = type(command).__name__
                assert answer.events is not None, f"{kind}: no answer"
                inner = command.commands if isinstance(command, Batch) else (command,)
                wanted = {x.command_id for x in inner}
                for x in inner:
                    assert len(answer.results(x.command_id)) == 1, (kind, answer)
                stray = {getattr(e, "command_id", None) for e in answer.events} - wanted - {None}
                assert stray == set(), f"{kind}: answers for commands not sent: {stray}"

    @pytest.mark.anyio
    async def test_a_place_is_answered_with_its_cloid(self, venue: VenueUnderTest) -> None:
        new = self._ids()
        async with self.running(venue) as h:
            place = self._place(await h.quote(), new())
            answer = await h.execute(place)
            result = answer.result(place.command_id)
            assert isinstance(result, OrderAccepted | OrderRejected), result
            assert result.cloid == place.cloid
            assert result.venue == h.adapter.name
            if isinstance(result, OrderAccepted):
                assert result.venue_order_id

    @pytest.mark.anyio
    async def test_a_cancel_of_an_unknown_order_is_answered(self, venue: VenueUnderTest) -> None:
        new = self._ids()
        async with self.running(venue) as h:
            quote = await h.quote()
            cancel = CancelOrder(
                command_id=new(), venue=h.adapter.name, symbol=quote.symbol, cloid="conf-nobody"
            )
            answer = await h.execute(cancel)
            assert answer.raised is None, f"a cancel of an unknown order raised {answer.raised}"
            result = answer.result(cancel.command_id)
            assert isinstance(result, CancelRejected | OrderCanceled), result
            assert result.cloid == cancel.cloid

    @pytest.mark.anyio
    async def test_requests_are_answered_with_their_reports(self, venue: VenueUnderTest) -> None:
        new = self._ids()
        async with self.running(venue) as h:
            quote = await h.quote()
            name = h.adapter.name
            place = self._place(quote, new())
            await h.execute(place)
            since = quote.ts - 60_000
            expected: list[tuple[ExecCommand, type[Any]]] = [
                (RequestOpenOrders(command_id=new(), venue=name), OpenOrdersReported),
                (RequestPositions(command_id=new(), venue=name), PositionsReported),
                (RequestBalances(command_id=new(), venue=name), BalanceReported),
                (RequestFills(command_id=new(), venue=name, since=since), FillsReported),
                (
                    RequestOrderStatus(
                        command_id=new(), venue=name, symbol=place.symbol, cloid=place.cloid
                    ),
                    OrderStatusReported,
                ),
            ]
            for request, report in expected:
                result = (await h.execute(request)).result(request.command_id)
                assert isinstance(result, report), (request, result)
                assert result.venue == name
            fills = (await h.execute(expected[3][0])).events or ()
            assert [e.since for e in fills if isinstance(e, FillsReported)] == [since]
            status = (await h.execute(expected[4][0])).events or ()
            (reported,) = [e for e in status if isinstance(e, OrderStatusReported)]
            assert reported.cloid == place.cloid

    @pytest.mark.anyio
    async def test_a_funding_request_is_answered_or_refused_as_not_applied(
        self, venue: VenueUnderTest
    ) -> None:
        """``RequestFunding``: the venue's funding history since ``since`` (payments of this
        venue only), or, for a venue without one, ``VenueError(not_applied=True)`` (the core
        then stops asking it); never an exception outside the contract."""
        new = self._ids()
        async with self.running(venue) as h:
            quote = await h.quote()
            name = h.adapter.name
            since = quote.ts - 60_000
            request = RequestFunding(command_id=new(), venue=name, since=since)
            answer = await h.execute(request)
            if answer.raised is not None:
                assert isinstance(answer.raised, VenueError) and answer.raised.not_applied, (
                    f"a venue without funding history refuses RequestFunding with "
                    f"VenueError(not_applied=True), got {answer.raised!r}"
                )
                return
            result = answer.result(request.command_id)
            assert isinstance(result, FundingReported), result
            assert (result.venue, result.since) == (name, since)
            assert all(p.venue == name and p.ts >= since for p in result.payments), result

    @pytest.mark.anyio
    async def test_not_applied_only_when_the_venue_did_not_act(self, venue: VenueUnderTest) -> None:
        new = self._ids()
        async with self.running(venue) as h:
            quote = await h.quote()
            control = venue.control
            # Refused: not an acceptance; and if it says "not applied", the venue agrees.
            control.reject_next()
            refused = self._place(quote, new())
            result = (await h.execute(refused)).result(refused.command_id)
            assert isinstance(result, OrderRejected | CommandFailed), result
            # Lost on the way, not applied: anything but a success.
            control.lose_next_answer(applied=False)
            dropped = self._place(quote, new())
            lost = await h.execute(dropped)
            assert not [e for e in lost.results(dropped.command_id) if isinstance(e, OrderAccepted)]
            # Applied, answer lost: never "certainly not applied".
            control.lose_next_answer(applied=True)
            applied = self._place(quote, new())
            unsure = await h.execute(applied)
            for event in unsure.results(applied.command_id):
                assert not (isinstance(event, CommandFailed) and event.not_applied), (
                    "the venue acted on this order: not_applied must be false"
                )
            acted = await self._status(h, applied, new())
            assert acted is not ReportedStatus.NOT_FOUND, "the fake venue did not act"
            for place, answer in ((refused, result), *self._failures(dropped, lost)):
                if isinstance(answer, CommandFailed) and answer.not_applied:
                    status = await self._status(h, place, new())
                    assert status in (ReportedStatus.NOT_FOUND, ReportedStatus.REJECTED), (
                        f"{place.cloid}: not_applied, but the venue reports it {status}"
                    )
            opened = RequestOpenOrders(command_id=new(), venue=h.adapter.name)
            report = (await h.execute(opened)).result(opened.command_id)
            assert isinstance(report, OpenOrdersReported)
            open_cloids = {o.cloid for o in report.orders}
            assert applied.cloid in open_cloids
            assert refused.cloid not in open_cloids and dropped.cloid not in open_cloids

    @staticmethod
    def _failures(place: PlaceOrder, answer: Answer) -> list[tuple[PlaceOrder, Event]]:
        return [(place, e) for e in answer.results(place.command_id)]

    @staticmethod
    async def _status(h: Harness, place: PlaceOrder, cid: int) -> ReportedStatus:
        request = RequestOrderStatus(
            command_id=cid, venue=h.adapter.name, symbol=place.symbol, cloid=place.cloid
        )
        result = (await h.execute(request)).result(cid)
        assert isinstance(result, OrderStatusReported), result
        return result.status

    @pytest.mark.anyio
    async def test_fills_carry_venue_fill_ids_and_deduplicate(self, venue: VenueUnderTest) -> None:
        new = self._ids()
        async with self.running(venue) as h:
            quote = await h.quote()
            mark = len(h.events)
            place = self._place(quote, new(), cross=True)
            answer = await h.execute(place)
            assert answer.events is not None

            def streamed() -> list[Fill]:
                kinds = (OrderFilled, OrderPartiallyFilled)
                out = [e.fill for e in h.since(mark, kinds)]
                out += [e.fill for e in answer.events or () if isinstance(e, kinds)]
                return [f for f in out if f.cloid == place.cloid]

            await h.wait_for(lambda: bool(streamed()), self.feed_within_ms, "fill")
            request = RequestFills(command_id=new(), venue=h.adapter.name, since=quote.ts)
            report = (await h.execute(request)).result(request.command_id)
            assert isinstance(report, FillsReported)
            reported = {f.fill_id: f for f in report.fills if f.cloid == place.cloid}
            ids = [f.fill_id for f in report.fills]
            assert len(ids) == len(set(ids)), "a fills report lists each execution once"
            for fill in streamed():
                assert fill.fill_id, "every fill carries the venue's fill id"
                assert fill.venue == h.adapter.name
                # The same execution, seen twice (stream and report), has the same id and terms:
                # the core keeps one.
                assert fill.fill_id in reported, (fill, sorted(reported))
                twin = reported[fill.fill_id]
                assert (twin.qty, twin.price, twin.side) == (fill.qty, fill.price, fill.side)

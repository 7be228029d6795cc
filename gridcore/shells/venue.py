"""The venue adapter contract: what every venue behind the runtime promises, and how it fails.

Theory of operation
-------------------
A venue (a simulated one, or a live exchange) is one :class:`VenueAdapter`. The runtime calls
only four things on it: ``name``, ``run(sink)``, ``execute(command)`` and ``quiesce()``. Opening
and closing the venue's connections belongs to whoever builds the adapter (the CLI), around
:meth:`~gridcore.shells.runtime.Runtime.run`: an adapter that needs it offers ``connect()`` /
``close()`` or is an async context manager (``async with adapter: ...``).

An adapter makes no trading decision and hides no failure. Every failure reaches the core as an
event, so that the core (not the adapter) decides what it means:

=======================================================  ==========================================
what happened                                            event the core sees
=======================================================  ==========================================
the venue answered a command                             its answer, carrying the ``command_id``
                                                         (``OrderAccepted``, ``OrderRejected``,
                                                         ``CancelRejected``, a report, ...)
the venue answered with an error: it certainly did not   ``VenueError(not_applied=True)`` raised
act (refused before sending, explicit rejection)         → ``CommandFailed(not_applied=True)``
the venue answered with an error whose effect is          ``VenueError()`` raised →
unknown (a 500 after the request was read)                ``CommandFailed(not_applied=False)``
timeout, reset connection, TLS error: outcome unknown    ``TransportError`` raised →
                                                         ``CommandFailed(not_applied=False)``
no answer at all                                         ``CommandTimedOut`` (the runtime's timeout)
an answer that omits one of a batch's orders              ``CommandFailed`` for that order (unknown)
the market/order stream dropped / came back              ``FeedDisconnected`` / ``FeedReconnected``
a venue message that cannot be read                      ``MessageMalformed`` (never an exception)
any other exception from ``execute`` or ``run``          a bug: the runtime commits its journal and
                                                         stops with :class:`AdapterFailed`
=======================================================  ==========================================

``not_applied`` is a promise the core trades on: a place that "certainly did not happen" is
forgotten, and its margin released. Say it only when the venue cannot have acted; when in doubt
leave it false, and the core asks the venue (order status, fills) before it acts again.

:mod:`gridcore.shells.conformance` is the executable form of this contract: every adapter must
pass it against its own fake venue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeAlias

from gridcore.commands import Batch, OrderCommand, RequestCommand
from gridcore.events import Event

if TYPE_CHECKING:
    from gridcore.shells.runtime import Sink

__all__ = [
    "AdapterFailed",
    "ExecCommand",
    "TransportError",
    "VenueAdapter",
    "VenueError",
]

#: Commands carried out by a venue adapter.
ExecCommand: TypeAlias = Batch | OrderCommand | RequestCommand


class VenueError(Exception):
    """The venue answered a command with an error.

    ``not_applied`` says the venue certainly did not act on it (refused before sending, or an
    explicit rejection); otherwise the outcome is unknown and the core looks it up. The runtime
    turns it into one ``CommandFailed`` per order/request command the call carried.
    """

    def __init__(self, message: str, *, not_applied: bool = False) -> None:
        super().__init__(message)
        self.not_applied = not_applied


class TransportError(Exception):
    """The command may or may not have reached the venue: a timeout, a reset connection, a
    failed TLS handshake after the request was written. The outcome is unknown
    (``not_applied`` is always false); the runtime turns it into ``CommandFailed``."""

    not_applied = False


class AdapterFailed(Exception):
    """An adapter raised something outside its declared vocabulary (:class:`VenueError`,
    :class:`TransportError`): a bug in the adapter. The runtime committed its journal and
    stopped; the exception that caused it is ``__cause__``."""

    def __init__(self, message: str, *, venue: str) -> None:
        super().__init__(message)
        self.venue = venue


class VenueAdapter(Protocol):
    """One venue behind one small protocol (see the module docstring for the failure map).

    * ``name``: the venue's name, as the bot's configuration spells it (``command.venue``).
    * ``run(sink)``: pushes the venue's stream through ``sink.emit`` until cancelled: market data
      (``QuoteTicked``, funding), order updates and fills, each fill with the venue's own unique
      ``fill_id`` (the core deduplicates on it, so a fill delivered twice is harmless). It
      reports the feed's state itself: ``FeedReconnected`` once the stream is up (also the first
      time) and ``FeedDisconnected`` whenever it drops, ``FeedReconnected`` when it is back;
      the core never assumes a feed is up. A message it cannot read becomes
      ``MessageMalformed``; ``run`` never raises for venue data. It returns only when the stream
      ended for good (the runtime then stops). Tasks that sleep on the clock or emit events are
      started with ``sink.spawn``.
    * ``execute(command)``: carries out one order/request command or a ``Batch`` and returns
      the venue's answers: at least one terminal result per inner command, each carrying that
      command's ``command_id`` (a place's answer echoes its ``cloid``; a cancel of an order the
      venue does not know is answered with ``CancelRejected``, not raised; a request is
      answered with its report: ``OpenOrdersReported``, ``PositionsReported``,
      ``BalanceReported``, ``FillsReported``, ``OrderStatusReported``, and for
      ``RequestFunding`` ``FundingReported``: the payments of the venue's funding-history
      endpoint since ``since``, each a ``FundingPaid`` with the same ``payment_id`` the stream
      gives it, so that the core books each once). An adapter whose venue keeps no funding
      history (or that does not implement it yet) raises ``VenueError(not_applied=True)`` for
      ``RequestFunding``, which is the default of an adapter that does not know the command:
      the core then stops asking it for the session and never halts for it. It may also return
      stream-like events (fills) without a ``command_id``. It raises only :class:`VenueError`
      or :class:`TransportError`; silence is left to the runtime's timeout.
    * ``quiesce()``: stop market data (shutdown) while answers and order updates still flow.
    """

    name: str

    async def run(self, sink: Sink) -> None:
        """Feed the venue's stream until cancelled (see the class docstring)."""
        ...

    async def execute(self, command: ExecCommand) -> Sequence[Event]:
        """Carry out ``command``; return the venue's answers (see the class docstring)."""
        ...

    def quiesce(self) -> None:
        """Stop market data (shutdown)."""
        ...

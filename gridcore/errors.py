"""The one exception hierarchy of gridcore.

Expected outcomes (a venue rejection, a risk limit, a timeout) are events or commands, never
exceptions. These exceptions are for broken contracts: malformed input handed to the core, an
impossible state transition requested by the caller, a configuration that cannot work. Because
``step`` returns a new state, a raise leaves the caller's previous state untouched.
"""

from __future__ import annotations

__all__ = ["ConfigError", "ContractError", "GridcoreError", "InvalidEvent"]


class GridcoreError(Exception):
    """Base class of every error gridcore raises on purpose."""


class ContractError(GridcoreError):
    """The caller broke the reducer's contract (for example an impossible order transition).

    The message says what was asked, in which state, and what to do instead.
    """


class InvalidEvent(ContractError, ValueError):
    """An event (or a part of one) was built with a field out of its range: a non-finite or
    negative price, a zero quantity, a time that is not integer milliseconds between 2000 and
    2100 (see :mod:`gridcore.events`).

    Raised when the event is constructed, so ``step`` never sees it. A shell that builds events
    from venue data catches it and reports the raw message as
    :class:`~gridcore.events.MessageMalformed` instead. It is also a ``ValueError`` so that
    parsers which turn ``ValueError`` into their own "invalid data" error (msgspec, attrs
    converters) treat it as such.
    """


class ConfigError(GridcoreError):
    """A configuration value is missing or out of range.

    ``field`` is the dotted path of the offending field (``grid.levels``), ``source`` the file it
    came from when known.
    """

    def __init__(self, field: str, message: str, *, source: str | None = None) -> None:
        self.field = field
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {message}")

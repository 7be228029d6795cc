"""The base of gridcore's enums: a ``repr`` that is valid Python and a fast hash."""

from __future__ import annotations

import enum

__all__ = ["CoreEnum"]


class CoreEnum(enum.Enum):
    """An enum whose ``repr`` is ``Class.MEMBER`` (valid Python, so a failing hypothesis
    example prints a program) and whose hash is the member's identity: members are singletons,
    and ``Enum.__hash__`` (a Python-level call hashing the name) is measurable on the hot path
    where sides and statuses key dictionaries."""

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

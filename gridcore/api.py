"""The strategy API beyond submit / cancel / say: modify, timers, refresh, and the stimuli back.

Theory of operation
-------------------
A strategy is a value; the kernel (:mod:`gridcore.core`) calls it and collects *intents*. Besides
:class:`~gridcore.core.Submit`, :class:`~gridcore.core.Cancel` and :class:`~gridcore.core.Say`,
a strategy may return the intents defined here:

* :class:`Modify` — change a resting order's price and/or size, keyed on its cloid. It goes
  through the order lifecycle table (triggers ``MODIFY_SENT``, ``MODIFIED``, ``MODIFY_REJECTED``)
  and, for a size increase, through the risk gate like a new order of the increase.
* :class:`SetTimer` / :class:`ClearTimer` — the strategy's own timers. Their names live in the
  ``strategy:`` namespace of timer ids, so a strategy can never start, replace or cancel a
  kernel timer such as ``gridcore:maintenance``; they fire back through ``on_timer`` under the
  name the strategy chose.
* :class:`Refresh` — ask for a fresh report (balances, positions, open orders, fills, funding)
  and be told, by a :class:`Refreshed` stimulus, once a report *newer than the request* has been
  applied (an older report already in flight when the request left does not count).

What the kernel says back that is not an order change is a *stimulus*, delivered through the
strategy's optional ``on_stimulus(view, stimulus)`` method: :class:`SubmitRefused`,
:class:`ModifyRefused`, :class:`Refreshed`, :class:`RefreshFailed`. A strategy that submits with
a ``ref``, modifies or refreshes must implement it (the kernel raises
:class:`~gridcore.errors.ContractError` otherwise, because a strategy must never be left
guessing); strategies that use none of them need not.

:class:`Desk` is the kernel's memory of these requests (the strategy's live timers and its
outstanding refreshes); it lives in the state so that a recovered bot re-arms its timers.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from decimal import Decimal

import attrs

from gridcore._enum import CoreEnum
from gridcore.errors import ContractError

__all__ = [
    "STRATEGY_TIMER_PREFIX",
    "ClearTimer",
    "Desk",
    "Modify",
    "ModifyRefused",
    "PendingRefresh",
    "Refresh",
    "RefreshFailed",
    "RefreshKind",
    "Refreshed",
    "SetTimer",
    "Stimulus",
    "SubmitRefused",
    "strategy_timer_id",
]

#: Every timer a strategy starts is named ``strategy:<its name>`` on the wire.
STRATEGY_TIMER_PREFIX = "strategy:"
_KERNEL_PREFIX = "gridcore:"


def strategy_timer_id(name: str) -> str:
    """The timer id the shell sees for the strategy timer ``name``."""
    return STRATEGY_TIMER_PREFIX + name


def _timer_name(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value or value.startswith(_KERNEL_PREFIX):
        raise ContractError(
            f"timer {attribute.name} must be a non-empty string not starting with "
            f"{_KERNEL_PREFIX!r} (the kernel's own namespace), got {value!r}; pick another name"
        )


class RefreshKind(CoreEnum):
    """What a :class:`Refresh` asks for, and which report answers it."""

    BALANCES = "balances"  # answered by BalanceReported
    POSITIONS = "positions"  # answered by PositionsReported
    OPEN_ORDERS = "open_orders"  # answered by OpenOrdersReported
    FILLS = "fills"  # answered by FillsReported
    FUNDING = "funding"  # answered by the next FundingRateUpdated (venues push it; no request)


# --- intents ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Modify:
    """Change the live order ``cloid`` to ``price`` and/or ``qty`` (the new *total* size in base
    units, filled part included; ``None`` keeps the current value).

    Allowed while the order rests (OPEN or PARTIALLY_FILLED) with no other modify out. The
    result comes back as an order change (``before``/``after`` with the new values) when the
    venue confirms, or as :class:`ModifyRefused` (gate, venue or uncertain outcome).
    """

    cloid: str
    price: Decimal | None = None
    qty: Decimal | None = None


@attrs.frozen(kw_only=True)
class SetTimer:
    """Fire ``on_timer(view, name)`` at ``fire_at`` (ms, the core's clock), then every
    ``every_ms`` when set, until cleared. Setting a name again replaces it."""

    name: str = attrs.field(validator=_timer_name)
    fire_at: int
    every_ms: int | None = None


@attrs.frozen(kw_only=True)
class ClearTimer:
    """Forget the strategy timer ``name`` (a no-op when it is not set). A fire already on its
    way is dropped by the kernel, never delivered."""

    name: str = attrs.field(validator=_timer_name)


@attrs.frozen(kw_only=True)
class Refresh:
    """Ask ``venue`` for a fresh ``what`` report; answered by :class:`Refreshed` once a report
    newer than this request has been applied, or :class:`RefreshFailed`."""

    venue: str
    what: RefreshKind


# --- stimuli ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SubmitRefused:
    """The kernel refused a :class:`~gridcore.core.Submit` that carried ``ref``; no order exists.

    ``code`` is the risk gate's or the kernel's reason (``not_ready``, ``halted``,
    ``max_position``, ``stale_balance``, ...), ``message`` says it in words."""

    ref: Hashable
    venue: str
    symbol: str
    code: str
    message: str


@attrs.frozen(kw_only=True)
class ModifyRefused:
    """A :class:`Modify` of ``cloid`` did not happen, or its outcome is unknown.

    ``code``: the gate's reason (the order is unchanged); ``not_modifiable`` (unknown, done, not
    resting yet, or another modify out); ``no_change``; ``rejected`` (the venue refused; the
    order rests unchanged); ``uncertain`` (the command failed or timed out: the kernel cancels
    the order, whose size at the venue is unknown, and its end arrives as an order change)."""

    cloid: str
    ref: Hashable
    code: str
    message: str


@attrs.frozen(kw_only=True)
class Refreshed:
    """A report of ``what`` from ``venue`` stamped ``report_ts``, newer than the request made at
    ``asked_ts``, has been applied: the view now reflects it."""

    venue: str
    what: RefreshKind
    asked_ts: int
    report_ts: int


@attrs.frozen(kw_only=True)
class RefreshFailed:
    """The request behind a :class:`Refresh` failed or timed out; nothing newer was applied."""

    venue: str
    what: RefreshKind
    asked_ts: int
    reason: str


Stimulus = SubmitRefused | ModifyRefused | Refreshed | RefreshFailed
"""Everything delivered to ``on_stimulus``."""


# --- the kernel's memory --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PendingRefresh:
    """One :class:`Refresh` waiting for its report. ``command_id`` is the request the kernel sent
    (``None`` for funding, which is pushed); a report answers it when it answers that request or
    a later one, or, pushed, is stamped after ``asked_ts``."""

    venue: str
    what: RefreshKind
    asked_ts: int
    command_id: int | None


@attrs.frozen(kw_only=True)
class Desk:
    """The strategy's outstanding requests: its timers (``name -> (fire_at, every_ms)``) and
    refreshes, oldest first."""

    timers: Mapping[str, tuple[int, int | None]] = attrs.field(factory=dict)
    refreshes: tuple[PendingRefresh, ...] = ()

    def answered(
        self, venue: str, what: RefreshKind, command_id: int | None, report_ts: int
    ) -> tuple[Desk, tuple[PendingRefresh, ...]]:
        """Split off the refreshes a report of ``what`` from ``venue`` answers."""
        done: list[PendingRefresh] = []
        kept: list[PendingRefresh] = []
        for p in self.refreshes:
            if p.venue != venue or p.what is not what:
                kept.append(p)
            elif p.command_id is not None and command_id is not None:
                (done if command_id >= p.command_id else kept).append(p)
            elif report_ts > p.asked_ts:
                done.append(p)
            else:
                kept.append(p)
        if not done:
            return self, ()
        return attrs.evolve(self, refreshes=tuple(kept)), tuple(done)

    def failed(self, command_id: int) -> tuple[Desk, tuple[PendingRefresh, ...]]:
        """Split off the refreshes waiting on the request ``command_id``."""
        done = tuple(p for p in self.refreshes if p.command_id == command_id)
        if not done:
            return self, ()
        kept = tuple(p for p in self.refreshes if p.command_id != command_id)
        return attrs.evolve(self, refreshes=kept), done

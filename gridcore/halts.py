"""Why trading halted, and what a restart and an operator resume do about it.

Theory of operation
-------------------
A halt reduces risk, it never adds it. While halted the risk gate refuses only orders that could
add exposure; reduce-only orders and hedge-mode closes (see :mod:`gridcore.exposure`) still pass,
so a rollback or a flatten is never blocked by the halt it follows. Halting cancels only the
live orders that would add exposure: closing orders, and orders that offset a held position in
the same asset (the second leg of a hedged entry), keep working. The one exception is the halt a
shell asks for at shutdown to cancel every order (``exit_cancel``): nobody watches the orders
after it, so it cancels them all.

Every halt has a :class:`HaltCause`. The kernel (:mod:`gridcore.core`), not a shell, decides
what happens to each cause when the bot is started again and when an operator asks it to
resume, from the table :data:`POLICIES`:

=================  ==================  ============================================================
cause              restart             operator resume
=================  ==================  ============================================================
``exit_cancel``    resumes trading     lifts the halt (the halt canceled every order, not only
                                       those adding exposure)
``operator``       stays halted        lifts the halt
``flatten``        stays halted        lifts the halt
``drawdown``       stays halted        lifts the halt; re-arms the drawdown baseline at today's PnL
``error_streak``   stays halted        lifts the halt; the error streak starts from zero
``poison``         stays halted        lifts the halt (after a fill or quote that was not believed)
``unreconciled``   stays halted        lifts the halt; every venue reconciles first
``margin``         stays halted        lifts the halt
=================  ==================  ============================================================

Every resume (and every restart that resumes) reconciles every venue before strategies trade
again, and resets the error streak: errors counted before the halt say nothing about the venue
after it. Only a resume of a drawdown halt moves the drawdown baseline: resuming after any
other cause keeps the drawdown measured from the same peak, so a bot halted by the operator
near its drawdown limit is still stopped at that limit.

While halted, a later cause replaces the recorded one when it is stricter (a restart would
resume the first and not the second): a bot halted to cancel its orders at exit that then
breaches its drawdown stays halted on the next start.

Journals written before causes existed record only a reason text; :func:`cause_of_reason` maps
those texts to their cause so that such a journal still loads and restarts the same way.
"""

from __future__ import annotations

import attrs

from gridcore._enum import CoreEnum

__all__ = ["POLICIES", "HaltCause", "HaltPolicy", "cause_of_reason"]


class HaltCause(CoreEnum):
    """Why trading halted."""

    OPERATOR = "operator"  # a person asked for it
    EXIT_CANCEL = "exit_cancel"  # the shell canceled every order at shutdown (cancel-on-exit)
    FLATTEN = "flatten"  # a person asked to close every position and stop
    DRAWDOWN = "drawdown"  # net PnL fell max_drawdown below its peak
    ERROR_STREAK = "error_streak"  # max_error_streak failed commands in a row
    POISON = "poison"  # a venue message was not believed (an implausible fill)
    UNRECONCILED = "unreconciled"  # a venue could not be reconciled with the ledger
    MARGIN = "margin"  # the account no longer covers what open orders reserve


@attrs.frozen(kw_only=True)
class HaltPolicy:
    """What a restart and an operator resume do with a halt of one cause.

    ``restart_resumes``: starting the bot again lifts the halt (as an operator resume would).
    ``resume_rearms_drawdown``: a resume moves the drawdown baseline to the PnL of that moment.
    ``cancels_every_order``: the halt cancels every live order, not only those adding exposure.
    """

    restart_resumes: bool = False
    resume_rearms_drawdown: bool = False
    cancels_every_order: bool = False


#: The table of the module doc: one row per cause.
POLICIES: dict[HaltCause, HaltPolicy] = {
    HaltCause.OPERATOR: HaltPolicy(),
    HaltCause.EXIT_CANCEL: HaltPolicy(restart_resumes=True, cancels_every_order=True),
    HaltCause.FLATTEN: HaltPolicy(),
    HaltCause.DRAWDOWN: HaltPolicy(resume_rearms_drawdown=True),
    HaltCause.ERROR_STREAK: HaltPolicy(),
    HaltCause.POISON: HaltPolicy(),
    HaltCause.UNRECONCILED: HaltPolicy(),
    HaltCause.MARGIN: HaltPolicy(),
}

#: The reason text the shell journaled for a cancel-on-exit halt before causes existed.
LEGACY_EXIT_REASON = "operator: cancel-on-exit at shutdown"

# Older journals: the start of each reason text the kernel wrote, and its cause.
_LEGACY_PREFIXES: tuple[tuple[str, HaltCause], ...] = (
    ("drawdown ", HaltCause.DRAWDOWN),
    ("implausible fill", HaltCause.POISON),
    ("flatten requested", HaltCause.FLATTEN),
)
_LEGACY_PARTS: tuple[tuple[str, HaltCause], ...] = (
    (" errors in a row", HaltCause.ERROR_STREAK),
    ("could not be reconciled", HaltCause.UNRECONCILED),
    ("positions differ from the ledger", HaltCause.UNRECONCILED),
    ("reserved by open orders", HaltCause.MARGIN),
)


def cause_of_reason(reason: str) -> HaltCause:
    """The cause of a halt recorded only by its reason text (journals from before causes).

    Texts the kernel wrote map to their cause, the shell's cancel-on-exit text to
    :attr:`HaltCause.EXIT_CANCEL`; anything else was an operator's halt.
    """
    if reason == LEGACY_EXIT_REASON:
        return HaltCause.EXIT_CANCEL
    for prefix, cause in _LEGACY_PREFIXES:
        if reason.startswith(prefix):
            return cause
    for part, cause in _LEGACY_PARTS:
        if part in reason:
            return cause
    return HaltCause.OPERATOR


def stricter(current: HaltCause, new: HaltCause) -> bool:
    """True when a halt of cause ``new`` must replace ``current`` (see the module doc)."""
    return POLICIES[current].restart_resumes and not POLICIES[new].restart_resumes

"""Two-venue funding-rate arbitrage: long the perpetual on one venue, short it on the other.

Theory of operation
-------------------
Each venue publishes a funding rate (``FundingRateUpdated``, a fraction per funding interval).
Annualized, the difference between the two is what a position long on the cheaper venue and
short on the dearer one earns. The strategy enters when that difference, net of both venues'
taker fees and the spread paid on entry and exit (spread over the expected hold), exceeds
``entry_apr``; it exits when the difference in the direction held falls under ``exit_apr``,
flips sign, after ``max_hold_ms``, or, in farm mode, after ``farm_hold_ms``.

Entries and exits are sagas (:mod:`gridcore.saga`): tables of ``(phase, signal) -> row``, every
phase with a deadline, every rule in :data:`ENTRY` and :data:`EXIT` below.

* Entry: ask both venues for fresh balances and positions and wait for reports newer than the
  request (failure ``stale-balance``, ``stale-position-cache``); reserve the margin on both
  venues (the strategy's own reservation, so that no other saga can spend it: failure
  ``parallel-entries-overdraw``); leg 1 on ``first_leg``'s venue; leg 2 only after leg 1's fill
  is booked, sized to the quantity actually filled (failure ``racing-legs``), rounded down to a
  quantity both venues accept. Leg 2 is checked: positions are asked for again and the saga ends
  ``HEDGED`` only when both venues report equal and opposite positions.
* Rollback: whenever the legs do not match (leg 2 refused, rejected, canceled, too slow, or a
  leg filled more than the other), the strategy asks for positions, waits until no order of the
  saga is live, and closes the difference reported, reduce-only, on the venue that holds more
  (or on both, down to the largest size both accept, when the difference is under that venue's
  lot) (failure ``rollback-in-quote``: sizes are base units read from the venue's report, never a
  quote notional). It repeats until the positions match; after ``max_attempts`` rounds it stops
  in ``STUCK`` with an alert and the pair opens nothing more.
* Exit: ask for positions, close both by their reported sizes, reduce-only, ask again, repeat
  until both venues are flat (failure ``one-sided-exit``: a failed side is retried, never left
  naked).

Several symbol pairs (``[[funding_arb.pairs]]``) trade on the same two venues, each on its own
:class:`PairBook` (rates, position, timers, figures) with at most one saga of its own. The
venues' balances are shared, so entries take turns: an entry starts only while no other entry
runs (:meth:`FundingArb.entry_locked`), and it reserves its margin on top of what every running
saga reserves. Two sagas never race for the same balance. Quantities (base units) and notionals (quote) are
separate fields everywhere in this module (``qty`` vs ``notional``).

The kind contributes invariants (:data:`INVARIANTS`) judged after every step of a run: bounded
naked exposure, sagas end flat or hedged, a rollback never exceeds the position it closes, no
decision on a report older than its limit or than its request, reservations never overdraw.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from gridcore import (
    Cancel,
    ConfigError,
    Event,
    FundingPaid,
    FundingRateUpdated,
    Intent,
    Level,
    OrderChange,
    OrderStatus,
    PositionMode,
    QuoteTicked,
    Refresh,
    Refreshed,
    RefreshFailed,
    RefreshKind,
    Rounding,
    Say,
    Side,
    State,
    Stimulus,
    Submit,
    SubmitRefused,
    TimeInForce,
)
from gridcore.config import BotConfig
from gridcore.invariants import Violation
from gridcore.numbers import add, div, mul, round_to_step, sub
from gridcore.registry import StrategyKind, register
from gridcore.saga import DEADLINE, Row, Saga, SagaSpec, Signal, advance, deadline_signal, start

__all__ = [
    "ENTRY",
    "EXIT",
    "INVARIANTS",
    "KIND",
    "Entry",
    "FundingArb",
    "FundingArbConfig",
    "PairBook",
    "PairConfig",
    "Phase",
    "Snapshot",
    "Stats",
]

KIND = "funding_arb"
ZERO = Decimal(0)
ONE = Decimal(1)
YEAR_MS = Decimal(365 * 24 * 3600 * 1000)


def _off(value: object) -> object:
    return None if value == "off" else value


def _dec(value: object) -> object:
    if isinstance(value, str | int) and not isinstance(value, bool):
        try:
            return Decimal(value)
        except ArithmeticError:
            return value
    return value


def _opt_int(value: object) -> object:
    return _off(value)


@attrs.frozen(kw_only=True)
class PairConfig:
    """One more symbol pair (a ``[[funding_arb.pairs]]`` table): the same perpetual as venue a
    and venue b name it, each venue's instrument (tick, lot, minimum notional, fees, settlement
    currency), and what this pair trades. The first pair is ``[instrument]`` on venue a and
    ``symbol_b`` on venue b; every field left out here takes the first pair's value on that
    venue (``None``, or ``""`` for the settlement currency: the venue's currency)."""

    symbol_a: str = ""
    symbol_b: str = ""
    tick_size_a: Decimal | None = attrs.field(default=None, converter=_dec)
    lot_size_a: Decimal | None = attrs.field(default=None, converter=_dec)
    tick_size_b: Decimal | None = attrs.field(default=None, converter=_dec)
    lot_size_b: Decimal | None = attrs.field(default=None, converter=_dec)
    min_notional_a: Decimal | None = attrs.field(default=None, converter=_dec)
    min_notional_b: Decimal | None = attrs.field(default=None, converter=_dec)
    maker_fee_a: Decimal | None = attrs.field(default=None, converter=_dec)
    taker_fee_a: Decimal | None = attrs.field(default=None, converter=_dec)
    maker_fee_b: Decimal | None = attrs.field(default=None, converter=_dec)
    taker_fee_b: Decimal | None = attrs.field(default=None, converter=_dec)
    settlement_a: str = ""
    settlement_b: str = ""
    base: str = ""  # the base asset (for reports; default: symbol_b)
    notional: Decimal | None = attrs.field(default=None, converter=_dec)  # quote per leg
    # Backtests and paper only: this symbol's synthetic funding paths and its price, which
    # follows the [market] path scaled to start here.
    sim_rate_a: Decimal | None = attrs.field(default=None, converter=_dec)
    sim_rate_b: Decimal | None = attrs.field(default=None, converter=_dec)
    sim_start_price: Decimal | None = attrs.field(default=None, converter=_dec)

    def check(self, where: str) -> None:
        """Field rules of one pair; ``where`` names it in errors (``funding_arb.pairs[1]``)."""
        for name in ("symbol_a", "symbol_b"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                venue = name[-1]
                raise ConfigError(
                    f"{where}.{name}",
                    f"missing: name the perpetual as venue {venue} lists it (a symbol of venue "
                    f'{venue}\'s instruments, for example "ETH")',
                )
        for name in ("tick_size_a", "lot_size_a", "tick_size_b", "lot_size_b"):
            value = getattr(self, name)
            symbol = self.symbol_a if name.endswith("a") else self.symbol_b
            if value is None:
                raise ConfigError(
                    f"{where}.{name}",
                    f"missing: {symbol!r} is unknown to venue {name[-1]} until its instrument "
                    f"is described; give its tick size and lot size ({name[:-2]}_a/_b)",
                )
        for name in (
            "tick_size_a",
            "lot_size_a",
            "tick_size_b",
            "lot_size_b",
            "notional",
            "sim_start_price",
        ):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                raise ConfigError(
                    f"{where}.{name}",
                    f'must be a positive decimal (write it as a string, "1.5"); got {value!r}',
                )
        for name in ("min_notional_a", "min_notional_b"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Decimal) or not value >= 0):
                raise ConfigError(f"{where}.{name}", f"must be a decimal >= 0, got {value!r}")
        for name in ("maker_fee_a", "taker_fee_a", "maker_fee_b", "taker_fee_b"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, Decimal) or not Decimal("-0.01") <= value <= Decimal("0.01")
            ):
                raise ConfigError(
                    f"{where}.{name}", f"must be a decimal between -0.01 and 0.01, got {value!r}"
                )
        for name in ("sim_rate_a", "sim_rate_b"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, Decimal) or not value.is_finite() or abs(value) >= 1
            ):
                raise ConfigError(f"{where}.{name}", f"must be a fraction, got {value!r}")
        lot_a, lot_b = self.lot_size_a, self.lot_size_b
        assert lot_a is not None and lot_b is not None
        coarse, fine = max(lot_a, lot_b), min(lot_a, lot_b)
        if round_to_step(coarse, fine, Rounding.DOWN) != coarse:
            raise ConfigError(
                f"{where}.lot_size_b",
                f"{lot_b} and lot_size_a {lot_a}: the larger must be a whole multiple of the "
                "smaller, so that one quantity is accepted by both venues",
            )


def _pairs(value: object) -> object:
    """The ``[[funding_arb.pairs]]`` tables, each read into a :class:`PairConfig` (errors name
    the pair: ``funding_arb.pairs[1].tick_size_b``)."""
    if not isinstance(value, list | tuple):
        return value
    from gridcore.config import _build  # the one reader of TOML tables into attrs classes

    out = []
    for n, item in enumerate(value, start=1):
        where = f"{KIND}.pairs[{n}]"
        pair = item if isinstance(item, PairConfig) else _build(PairConfig, item, where)
        pair.check(where)
        out.append(pair)
    return tuple(out)


@attrs.frozen(kw_only=True)
class FundingArbConfig:
    """The ``[funding_arb]`` table. ``venue``/``symbol`` (venue "a") come from ``[venue]`` and
    ``[instrument]``; the second venue ("b") is described here, with its own symbol, tick,
    lot, minimum notional and fees. Every setting has a default."""

    venue: str = "sim"
    symbol: str = "BTC-PERP"
    venue_b: str = "b"
    symbol_b: str = "BTC"
    tick_size_b: Decimal = attrs.field(default=Decimal("0.1"), converter=_dec)
    lot_size_b: Decimal = attrs.field(default=Decimal("0.001"), converter=_dec)
    min_notional_b: Decimal = attrs.field(default=Decimal("10"), converter=_dec)
    maker_fee_b: Decimal = attrs.field(default=Decimal("0.0002"), converter=_dec)
    taker_fee_b: Decimal = attrs.field(default=Decimal("0.0005"), converter=_dec)
    funding_interval_ms: int = 8 * 3600 * 1000  # venue a's funding interval
    funding_interval_ms_b: int = 3600 * 1000  # venue b's funding interval
    mode: str = "arb"  # "arb": enter on the funding edge; "farm": enter whenever flat
    first_leg: str = "a"  # the venue ("a" or "b") that gets leg 1
    notional: Decimal = attrs.field(default=Decimal("500"), converter=_dec)  # quote per leg
    entry_apr: Decimal = attrs.field(default=Decimal("0.10"), converter=_dec)
    exit_apr: Decimal = attrs.field(default=Decimal("0.02"), converter=_dec)
    max_hold_ms: int = 7 * 24 * 3600 * 1000
    farm_hold_ms: int | None = attrs.field(default=None, converter=_opt_int)
    cooldown_ms: int = 60_000
    slippage: Decimal = attrs.field(default=Decimal("0.002"), converter=_dec)
    leg_timeout_ms: int = 5_000
    refresh_timeout_ms: int = 5_000
    max_report_age_ms: int = 10_000
    max_naked_ms: int = 30_000
    max_attempts: int = 10
    margin_buffer: Decimal = attrs.field(default=Decimal("1.2"), converter=_dec)
    sagas_kept: int = 64  # finished sagas kept in the state for reports (memory stays bounded)
    # Backtests only (gridcore.sim.funding): the two venues' synthetic funding-rate paths and
    # each venue's own faults (parts per million of opening orders).
    sim_rate_a: Decimal = attrs.field(default=Decimal("0.0001"), converter=_dec)
    sim_rate_b: Decimal = attrs.field(default=Decimal("0.00005"), converter=_dec)
    sim_rate_volatility: Decimal = attrs.field(default=Decimal("0.00002"), converter=_dec)
    sim_rates_csv: str = ""  # recorded rates (timestamp,venue,rate) instead of the paths
    sim_reject_ppm: int = 0
    sim_partial_ppm: int = 0
    sim_late_reject_ppm: int = 0
    pairs: tuple[PairConfig, ...] = attrs.field(default=(), converter=_pairs)
    """More symbol pairs on the same two venues (``[[funding_arb.pairs]]``); the first pair is
    ``symbol`` on venue a and ``symbol_b`` on venue b."""

    def __attrs_post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"{KIND}.{name}", why)

        for name in ("tick_size_b", "lot_size_b", "notional", "margin_buffer"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                raise bad(
                    name, f'must be a positive decimal (write it as a string, "1.5"); got {value!r}'
                )
        for name in (
            "min_notional_b",
            "maker_fee_b",
            "taker_fee_b",
            "entry_apr",
            "exit_apr",
            "slippage",
        ):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise bad(name, f'must be a decimal (write it as a string, "0.1"); got {value!r}')
        if self.min_notional_b < 0:
            raise bad("min_notional_b", f"must be >= 0, got {self.min_notional_b}")
        if not ZERO < self.slippage < Decimal("0.05"):
            raise bad("slippage", f"must be between 0 and 0.05 (a fraction), got {self.slippage}")
        if self.exit_apr < 0:
            raise bad(
                "exit_apr",
                f"{self.exit_apr} is negative: the strategy always exits when the funding "
                "difference flips (it then pays funding); use 0 to exit only on a flip",
            )
        if self.exit_apr > self.entry_apr:
            raise bad(
                "exit_apr",
                f"{self.exit_apr} is above entry_apr {self.entry_apr}: every entry would exit "
                "at once; make exit_apr <= entry_apr",
            )
        if self.mode not in ("arb", "farm"):
            raise bad("mode", f'must be "arb" or "farm", got {self.mode!r}')
        if self.first_leg not in ("a", "b"):
            raise bad(
                "first_leg", f'must be "a" ([venue]) or "b" (venue_b), got {self.first_leg!r}'
            )
        if self.mode == "farm" and self.farm_hold_ms is None:
            raise bad("farm_hold_ms", "farm mode exits after a fixed hold: set farm_hold_ms")
        for name in (
            "funding_interval_ms",
            "funding_interval_ms_b",
            "max_hold_ms",
            "leg_timeout_ms",
            "refresh_timeout_ms",
            "max_report_age_ms",
            "max_naked_ms",
            "max_attempts",
            "farm_hold_ms",
            "sagas_kept",
        ):
            value = getattr(self, name)
            if value is None and name == "farm_hold_ms":
                continue
            if type(value) is not int or value <= 0:
                raise bad(name, f"must be a whole number > 0, got {value!r}")
        for name in ("sim_reject_ppm", "sim_partial_ppm", "sim_late_reject_ppm"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= 1_000_000:
                raise bad(name, f"must be a whole number of ppm in 0..1000000, got {value!r}")
        if self.cooldown_ms < 0 or type(self.cooldown_ms) is not int:
            raise bad("cooldown_ms", f"must be a whole number >= 0, got {self.cooldown_ms!r}")
        if self.max_naked_ms < 4 * self.leg_timeout_ms:
            raise bad(
                "max_naked_ms",
                f"{self.max_naked_ms} is under 4 x leg_timeout_ms ({4 * self.leg_timeout_ms}): "
                "leg 1, its cancel, leg 2 and its cancel each may take leg_timeout_ms before "
                "the rollback starts; raise max_naked_ms or lower leg_timeout_ms",
            )
        if not self.venue_b or self.venue_b == self.venue:
            raise bad("venue_b", f"must name a second venue, not {self.venue_b!r}")
        if not isinstance(self.pairs, tuple) or not all(
            isinstance(p, PairConfig) for p in self.pairs
        ):
            raise bad("pairs", f"must be a list of tables [[{KIND}.pairs]], got {self.pairs!r}")
        # A symbol belongs to one pair: two pairs on one symbol would share (and fight over)
        # one position on that venue.
        seen = {("a", self.symbol): "the first pair", ("b", self.symbol_b): "the first pair"}
        for n, pair in enumerate(self.pairs, start=1):
            for key, symbol in (("a", pair.symbol_a), ("b", pair.symbol_b)):
                other = seen.setdefault((key, symbol), f"pairs[{n}]")
                if other != f"pairs[{n}]":
                    raise bad(
                        f"pairs[{n}].symbol_{key}",
                        f"{symbol!r} on venue {key} is already traded by {other}: a duplicate "
                        "pair; each symbol of a venue belongs to one pair (remove this pair or "
                        "name another symbol)",
                    )

    def pair_symbols(self) -> tuple[tuple[str, str, Decimal], ...]:
        """``(symbol on venue a, symbol on venue b, notional per leg)`` of every pair, the
        first pair first."""
        return (
            (self.symbol, self.symbol_b, self.notional),
            *(
                (p.symbol_a, p.symbol_b, self.notional if p.notional is None else p.notional)
                for p in self.pairs
            ),
        )


def common_lot(lot_a: Decimal, lot_b: Decimal) -> Decimal:
    """The coarser lot: a multiple of it is a multiple of both (checked at load)."""
    return max(lot_a, lot_b)


def check(config: FundingArbConfig, bot: BotConfig) -> None:
    """Combination rules over the whole configuration."""
    if bot.venue.position_mode is not PositionMode.ONE_WAY:
        raise ConfigError(
            "venue.position_mode",
            f'is "{bot.venue.position_mode.value}"; the {KIND} strategy holds one net position '
            'per venue: set venue.position_mode = "one_way"',
        )
    if bot.venue.funding_interval_ms != config.funding_interval_ms:
        raise ConfigError(
            f"{KIND}.funding_interval_ms",
            f"{config.funding_interval_ms} differs from venue.funding_interval_ms "
            f"{bot.venue.funding_interval_ms}: both describe venue {bot.venue.name!r}; give "
            "them the same value",
        )
    cap = bot.risk.max_order_notional
    if cap is not None and mul(config.notional, add(ONE, config.slippage)) > cap:
        raise ConfigError(
            f"{KIND}.notional",
            f"{config.notional} (plus slippage {config.slippage}) is over "
            f"risk.max_order_notional {cap}, so every leg would be refused; lower "
            f"{KIND}.notional or raise risk.max_order_notional",
        )
    currency = bot.instrument.quote  # both venues settle in it (the first pair's quote)
    for n, pair in enumerate(config.pairs, start=1):
        for key in ("a", "b"):
            settles = getattr(pair, f"settlement_{key}")
            if settles and settles != currency:
                raise ConfigError(
                    f"{KIND}.pairs[{n}].settlement_{key}",
                    f"{settles!r} differs from {currency!r}, the currency venue {key} settles "
                    "the first pair in: every instrument of a venue settles in one currency "
                    "and both legs of a pair must settle alike, or the hedge's PnL and margin "
                    f"could not be added; trade this pair from an account settling in {settles}",
                )
        notional = config.notional if pair.notional is None else pair.notional
        if cap is not None and mul(notional, add(ONE, config.slippage)) > cap:
            raise ConfigError(
                f"{KIND}.pairs[{n}].notional",
                f"{notional} (plus slippage {config.slippage}) is over risk.max_order_notional "
                f"{cap}, so every leg would be refused; lower it or raise the cap",
            )
        floor = max(
            bot.instrument.min_notional if pair.min_notional_a is None else pair.min_notional_a,
            config.min_notional_b if pair.min_notional_b is None else pair.min_notional_b,
        )
        if notional < floor:
            raise ConfigError(
                f"{KIND}.pairs[{n}].notional",
                f"{notional} is under the pair's minimum notional {floor}: every leg would be "
                "refused; raise it",
            )
    lot_a, lot_b = bot.instrument.lot_size, config.lot_size_b
    coarse, fine = max(lot_a, lot_b), min(lot_a, lot_b)
    if round_to_step(coarse, fine, Rounding.DOWN) != coarse:
        raise ConfigError(
            f"{KIND}.lot_size_b",
            f"{lot_b} and instrument.lot_size {lot_a}: the larger must be a whole multiple of "
            "the smaller, so that one quantity is accepted by both venues",
        )


# --- the saga data -----------------------------------------------------------------------------


class Phase(enum.Enum):
    """Where an entry or exit saga stands."""

    REFRESHING = "refreshing"  # fresh balances and positions asked for on both venues
    LEG1 = "leg1"  # leg 1 sent on the first venue, waiting for its fill
    CANCELING_LEG1 = "canceling_leg1"  # leg 1 overdue: cancel sent
    LEG2 = "leg2"  # leg 1 filled (some): leg 2 sent for the quantity filled
    CANCELING_LEG2 = "canceling_leg2"  # leg 2 overdue: cancel sent
    VERIFYING = "verifying"  # both legs ended: positions asked for, to check they match
    ROLLBACK_REFRESH = "rollback_refresh"  # legs unequal: positions asked for before closing
    ROLLING_BACK = "rolling_back"  # closing the reported difference, reduce-only
    EXIT_REFRESH = "exit_refresh"  # exit: positions asked for on both venues
    CLOSING = "closing"  # exit: both legs being closed by their reported sizes
    HEDGED = "hedged"  # done: equal and opposite positions reported on both venues
    ROLLED_BACK = "rolled_back"  # done: the entry failed and both venues are flat again
    ABORTED = "aborted"  # done: nothing was traded (no fresh report, no margin, leg 1 empty)
    CLOSED = "closed"  # done: the exit left both venues flat
    STUCK = "stuck"  # done: still unequal after max_attempts rounds; alert raised, bot stopped


ACTIVE_CLOSE = frozenset(
    {Phase.ROLLBACK_REFRESH, Phase.ROLLING_BACK, Phase.EXIT_REFRESH, Phase.CLOSING}
)
"""Phases that are themselves an active rollback or close step (naked exposure allowed)."""


@attrs.frozen(kw_only=True)
class Snapshot:
    """What the strategy reads from the view when it signals a saga: signed positions (base),
    available balances (quote) with their report times, mids, and the time."""

    now: int
    pos_a: Decimal
    pos_b: Decimal
    avail_a: Decimal | None
    avail_b: Decimal | None
    bal_ts_a: int | None
    bal_ts_b: int | None
    mid_a: Decimal | None
    mid_b: Decimal | None
    reserved_other: Decimal = ZERO  # quote margin other running sagas hold on each venue


@attrs.frozen(kw_only=True)
class Decision:
    """A decision a saga took on reports: when (``at``), when its request went out
    (``asked_at``), and for each report it needed, the request that report answered
    (``answers``: the kernel's ``Refreshed.asked_ts``, ``-1`` when missing) and its time
    (``report_ts``)."""

    at: int
    asked_at: int
    answers: tuple[int, ...]
    report_ts: tuple[int, ...]
    what: str


@attrs.frozen(kw_only=True)
class Entry:
    """One saga's data (entry or exit). ``first``/``second`` are venue keys ``"a"``/``"b"``;
    ``long`` is the key of the venue bought. Quantities are base units, ``reserved`` quote."""

    saga_id: str
    kind: str  # "entry" or "exit"
    pair: int = 0  # which pair (the index into FundingArb.books)
    long: str = "a"
    first: str = "a"
    qty: Decimal = ZERO  # planned base quantity of leg 1
    notional: Decimal = ZERO  # planned quote notional of leg 1 (for the record only)
    reserved: Decimal = ZERO  # quote margin reserved on each venue while the entry runs
    leg1_filled: Decimal = ZERO
    leg2_qty: Decimal = ZERO
    leg2_filled: Decimal = ZERO
    asked_at: int = 0  # when the current refresh was asked
    answered: Mapping[tuple[str, str], tuple[int, int]] = attrs.field(factory=dict)
    """``(venue key, what) -> (request answered, report time)`` of the reports that answered
    the current request."""
    avail_seen: Decimal | None = None  # the smaller fresh available balance the entry saw
    live: Mapping[str, str] = attrs.field(factory=dict)  # leg -> cloid of a live order
    orders: tuple[tuple[str, str], ...] = ()  # (leg, cloid) of every order the saga placed
    attempt: int = 0  # rounds decided (names the orders' refs)
    tries: int = 0  # rounds in which a close reached the kernel's gate and was accepted
    tried_round: int = -1
    cause: str = ""  # why a rollback started
    naked_since: int | None = None
    naked_ms: int = 0
    decisions: tuple[Decision, ...] = ()
    closes: tuple[tuple[str, Decimal, Decimal], ...] = ()  # (venue key, close qty, |position|)
    snap: Snapshot | None = None
    params: Params | None = None

    @property
    def second(self) -> str:
        """The venue key of leg 2."""
        return "b" if self.first == "a" else "a"


@attrs.frozen(kw_only=True)
class Params:
    """Everything the row actions need from the configuration (they see only the saga)."""

    venue_a: str
    venue_b: str
    symbol_a: str
    symbol_b: str
    tick_a: Decimal
    tick_b: Decimal
    lot_a: Decimal
    lot_b: Decimal
    min_notional_a: Decimal
    min_notional_b: Decimal
    leverage: Decimal
    slippage: Decimal
    max_attempts: int
    max_report_age_ms: int
    margin_buffer: Decimal

    def venue(self, key: str) -> str:
        """The venue name of key ``"a"`` or ``"b"``."""
        return self.venue_a if key == "a" else self.venue_b

    def symbol(self, key: str) -> str:
        """The symbol on venue key ``key``."""
        return self.symbol_a if key == "a" else self.symbol_b

    def key_of(self, venue: str) -> str | None:
        """``"a"``/``"b"`` for a venue name, else ``None``."""
        return "a" if venue == self.venue_a else "b" if venue == self.venue_b else None


def _pos(snap: Snapshot, key: str) -> Decimal:
    return snap.pos_a if key == "a" else snap.pos_b


def _mid(snap: Snapshot, key: str) -> Decimal | None:
    return snap.mid_a if key == "a" else snap.mid_b


def _price(p: Params, key: str, side: Side, mid: Decimal) -> Decimal:
    tick = p.tick_a if key == "a" else p.tick_b
    if side is Side.BUY:
        return round_to_step(mul(mid, add(ONE, p.slippage)), tick, Rounding.UP)
    return round_to_step(mul(mid, sub(ONE, p.slippage)), tick, Rounding.DOWN)


def _order(
    e: Entry, key: str, side: Side, qty: Decimal, leg: str, *, reduce_only: bool
) -> Submit | None:
    p, snap = e.params, e.snap
    assert p is not None and snap is not None
    mid = _mid(snap, key)
    if mid is None:
        return None
    return Submit(
        venue=p.venue(key),
        symbol=p.symbol(key),
        side=side,
        qty=qty,
        price=_price(p, key, side, mid),
        tif=TimeInForce.IOC,
        reduce_only=reduce_only,
        tag=f"{KIND}:{leg}",
        ref=(e.saga_id, leg, e.attempt),
    )


def _exposure(e: Entry) -> Decimal:
    snap = e.snap
    if snap is None:
        return ZERO
    return abs(add(snap.pos_a, snap.pos_b))


def _naked(e: Entry, now: int) -> Entry:
    """Track how long the two venues' positions have not offset each other."""
    exposed = _exposure(e) != 0
    if exposed and e.naked_since is None:
        return attrs.evolve(e, naked_since=now)
    if not exposed and e.naked_since is not None:
        return attrs.evolve(e, naked_since=None, naked_ms=e.naked_ms + now - e.naked_since)
    return e


def _with_snap(e: Entry, signal: Signal) -> Entry:
    snap = signal.detail.snap if isinstance(signal.detail, Detail) else None
    if snap is None:
        return e
    return _naked(attrs.evolve(e, snap=snap), snap.now)


@attrs.frozen(kw_only=True)
class Detail:
    """The detail of every signal the strategy sends: the snapshot, and what it is about (a
    cloid, a refresh ``(venue key, what, asked_ts, report_ts)``, a refusal code)."""

    snap: Snapshot
    cloid: str | None = None
    refresh: tuple[str, str, int, int] | None = None
    code: str = ""


def _refresh(e: Entry, what: Sequence[RefreshKind]) -> tuple[Entry, list[Intent]]:
    p, snap = e.params, e.snap
    assert p is not None and snap is not None
    intents: list[Intent] = []
    for key in ("a", "b"):
        for kind in what:
            intents.append(Refresh(venue=p.venue(key), what=kind))
    return attrs.evolve(e, asked_at=snap.now, answered={}), intents


_BOTH_POSITIONS = frozenset({("a", "positions"), ("b", "positions")})
_ALL_FOR_ENTRY = _BOTH_POSITIONS | {("a", "balances"), ("b", "balances")}


def _answered(e: Entry, signal: Signal) -> Entry:
    d = signal.detail
    if not isinstance(d, Detail) or d.refresh is None:
        return e
    key, what, asked_ts, report_ts = d.refresh
    if asked_ts < e.asked_at:
        return e  # answers a request older than the one this decision waits for
    return attrs.evolve(e, answered={**e.answered, (key, what): (asked_ts, report_ts)})


def _decided(e: Entry, what: str) -> Entry:
    """Record a decision and the times of the reports it was taken on (the invariant
    :func:`decisions_on_fresh_reports` checks them against the request and the age limit)."""
    snap = e.snap
    assert snap is not None
    needed = _ALL_FOR_ENTRY if what == "entry" else _BOTH_POSITIONS
    got = [e.answered.get(k, (-1, -1)) for k in sorted(needed)]
    answers = tuple(a for a, _ in got)
    times = tuple(t for _, t in got)
    return attrs.evolve(
        e,
        decisions=(
            *e.decisions,
            Decision(at=snap.now, asked_at=e.asked_at, answers=answers, report_ts=times, what=what),
        ),
    )


# --- row actions -------------------------------------------------------------------------------


def _act_note(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    return _with_snap(saga.data, signal), ()


def _act_answer(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    return _answered(_with_snap(saga.data, signal), signal), ()


def _entry_ready(saga: Saga[Entry], signal: Signal) -> bool:
    e = _answered(saga.data, signal)
    return e.answered.keys() >= _ALL_FOR_ENTRY


def _affordable(saga: Saga[Entry], signal: Signal) -> bool:
    """Fresh balances cover the reservation on both venues, both venues are flat, and the
    quantity is one both venues accept."""
    e = _with_snap(saga.data, signal)
    snap, p = e.snap, e.params
    assert snap is not None and p is not None
    if snap.pos_a != 0 or snap.pos_b != 0 or snap.mid_a is None or snap.mid_b is None:
        return False
    need = add(mul(div(e.notional, p.leverage), p.margin_buffer), snap.reserved_other)
    for avail in (snap.avail_a, snap.avail_b):
        if avail is None or avail < need:
            return False
    return e.qty > 0


def _act_leg1(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = _answered(_with_snap(saga.data, signal), signal)
    p = e.params
    assert p is not None
    snap = e.snap
    assert snap is not None
    seen = min(snap.avail_a or ZERO, snap.avail_b or ZERO)
    reserve = mul(div(e.notional, p.leverage), p.margin_buffer)
    e = _decided(attrs.evolve(e, reserved=reserve, avail_seen=seen), "entry")
    side = Side.BUY if e.first == e.long else Side.SELL
    leg1 = _order(e, e.first, side, e.qty, "leg1", reduce_only=False)
    return e, ([leg1] if leg1 is not None else [])


def _act_unaffordable(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = _answered(_with_snap(saga.data, signal), signal)
    return attrs.evolve(e, cause="no fresh margin or not flat"), ()


def _act_named(leg: str) -> Any:
    def act(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
        e = _with_snap(saga.data, signal)
        d = signal.detail
        cloid = d.cloid if isinstance(d, Detail) else None
        if cloid is None:
            return e, ()
        e = attrs.evolve(e, live={**e.live, leg: cloid}, orders=(*e.orders, (leg, cloid)))
        if leg in _CLOSING_LEGS and e.tried_round != e.attempt:
            # A round counts towards max_attempts only when an order was placed: a close
            # refused by the kernel (stale quotes during an outage) is retried without limit.
            e = attrs.evolve(e, tries=e.tries + 1, tried_round=e.attempt)
        return e, ()

    return act


_CLOSING_LEGS = frozenset({"rollback_a", "rollback_b", "close_a", "close_b"})


def _gone(e: Entry, leg: str) -> Mapping[str, str]:
    return {k: v for k, v in e.live.items() if k != leg}


def _act_leg1_progress(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = _with_snap(saga.data, signal)
    return attrs.evolve(e, leg1_filled=max(e.leg1_filled, signal.qty)), ()


def _hedge_qty(e: Entry) -> Decimal:
    p = e.params
    assert p is not None
    return round_to_step(e.leg1_filled, common_lot(p.lot_a, p.lot_b), Rounding.DOWN)


def _hedgeable(saga: Saga[Entry], signal: Signal) -> bool:
    e = attrs.evolve(saga.data, leg1_filled=max(saga.data.leg1_filled, signal.qty))
    p, snap = e.params, e.snap
    assert p is not None
    qty = _hedge_qty(e)
    if qty <= 0 or snap is None:
        return False
    mid = _mid(snap, e.second)
    floor = p.min_notional_b if e.second == "b" else p.min_notional_a
    return mid is not None and mul(qty, mid) >= floor


def _act_leg2(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = _with_snap(saga.data, signal)
    e = attrs.evolve(e, leg1_filled=max(e.leg1_filled, signal.qty), live=_gone(e, "leg1"))
    qty = _hedge_qty(e)  # leg 1's actual fill, never the plan; both venues accept it
    side = Side.SELL if e.first == e.long else Side.BUY
    e = attrs.evolve(e, leg2_qty=qty)
    leg2 = _order(e, e.second, side, qty, "leg2", reduce_only=False)
    return e, ([leg2] if leg2 is not None else [])


def _cause(text: str) -> Any:
    def act(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
        e = _with_snap(saga.data, signal)
        leg = "leg1" if text.startswith("leg 1") else "leg2"
        d = signal.detail
        code = f" ({d.code})" if isinstance(d, Detail) and d.code else ""
        e = attrs.evolve(e, cause=e.cause or text + code, live=_gone(e, leg))
        if leg == "leg1":
            e = attrs.evolve(e, leg1_filled=max(e.leg1_filled, signal.qty))
        else:
            e = attrs.evolve(e, leg2_filled=max(e.leg2_filled, signal.qty))
        e, intents = _refresh(e, (RefreshKind.POSITIONS,))
        return e, intents

    return act


def _act_leg_ended_empty(leg: str) -> Any:
    def act(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
        e = _with_snap(saga.data, signal)
        return attrs.evolve(e, live=_gone(e, leg), reserved=ZERO), ()

    return act


def _act_cancel(leg: str) -> Any:
    def act(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
        e = _with_snap(saga.data, signal)
        cloid = e.live.get(leg)
        return e, ([Cancel(cloid=cloid)] if cloid is not None else [])

    return act


def _leg1_filled_some(saga: Saga[Entry], signal: Signal) -> bool:
    return saga.data.leg1_filled > 0


def _act_leg1_overdue(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    # Leg 1's cancel is unanswered but some of it filled: stop waiting, make the positions
    # match (the rollback waits for the order to end before it closes anything).
    e = _with_snap(saga.data, signal)
    e = attrs.evolve(e, cause=e.cause or "leg 1 cancel unanswered")
    cancels: list[Intent] = [Cancel(cloid=c) for c in e.live.values()]
    e, intents = _refresh(e, (RefreshKind.POSITIONS,))
    return e, [*cancels, *intents]


def _act_leg2_progress(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = _with_snap(saga.data, signal)
    return attrs.evolve(e, leg2_filled=max(e.leg2_filled, signal.qty)), ()


def _act_verify(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = _with_snap(saga.data, signal)
    e = attrs.evolve(e, leg2_filled=max(e.leg2_filled, signal.qty), live=_gone(e, "leg2"))
    return _refresh(e, (RefreshKind.POSITIONS,))


def _act_late_leg1(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    # A leg 1 fill reported after leg 2 was sized: the verification sees it in the positions.
    e = _with_snap(saga.data, signal)
    live = _gone(e, "leg1") if "ended" in signal.kind or "filled" in signal.kind else e.live
    return attrs.evolve(e, leg1_filled=max(e.leg1_filled, signal.qty), live=live), ()


def _act_ended(leg: str) -> Any:
    def act(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
        e = _with_snap(saga.data, signal)
        return attrs.evolve(e, live=_gone(e, leg)), ()

    return act


def _act_cancel_and_refresh(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = _with_snap(saga.data, signal)
    e = attrs.evolve(e, cause=e.cause or "leg 2 overdue")
    cancels: list[Intent] = [Cancel(cloid=c) for c in e.live.values()]
    e, intents = _refresh(e, (RefreshKind.POSITIONS,))
    return e, [*cancels, *intents]


def _act_refresh_again(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = _with_snap(saga.data, signal)
    cancels: list[Intent] = [Cancel(cloid=c) for c in e.live.values()]
    e, intents = _refresh(e, (RefreshKind.POSITIONS,))
    return e, [*cancels, *intents]


def _positions_known(saga: Saga[Entry], signal: Signal) -> bool:
    """Both venues answered the latest position request and no order of the saga is live."""
    e = _answered(_with_snap(saga.data, signal), signal)
    return e.answered.keys() >= _BOTH_POSITIONS and not e.live


def _matched(saga: Saga[Entry], signal: Signal) -> bool:
    e = _with_snap(saga.data, signal)
    return _positions_known(saga, signal) and _exposure(e) == 0


def _flat(saga: Saga[Entry], signal: Signal) -> bool:
    e = _with_snap(saga.data, signal)
    snap = e.snap
    return _matched(saga, signal) and snap is not None and snap.pos_a == 0 and snap.pos_b == 0


def _out_of_attempts(saga: Saga[Entry], signal: Signal) -> bool:
    p = saga.data.params
    assert p is not None
    return _positions_known(saga, signal) and saga.data.tries >= p.max_attempts


def _act_done(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = _answered(_with_snap(saga.data, signal), signal)
    return attrs.evolve(e, reserved=ZERO), ()


def _act_stuck(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = _answered(_with_snap(saga.data, signal), signal)
    snap, p = e.snap, e.params
    assert snap is not None and p is not None
    return attrs.evolve(e, reserved=ZERO), [
        Say(
            level=Level.ALERT,
            code="funding_arb_stuck",
            message=(
                f"{e.kind} {e.saga_id} ({p.symbol_a}/{p.symbol_b}): positions still unequal "
                f"after {e.tries} rounds (a {snap.pos_a}, b {snap.pos_b}); this pair opens "
                "nothing more until an operator flattens it on both venues"
            ),
        )
    ]


def _act_close_difference(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    """Bring both venues to the same size, reduce-only, from their reported positions.

    The target is the smaller position rounded down to a quantity both venues accept; each
    venue closes what it holds above it (usually only the venue that holds more; both when the
    difference is under the larger venue's lot). Never more than a venue holds."""
    e = _answered(_with_snap(saga.data, signal), signal)
    snap, p = e.snap, e.params
    assert snap is not None and p is not None
    e = _decided(attrs.evolve(e, attempt=e.attempt + 1), "rollback")
    a, b = snap.pos_a, snap.pos_b
    # Positions are opposite by design; were they on the same side, both are closed whole.
    target = ZERO
    if a * b <= 0:
        target = round_to_step(min(abs(a), abs(b)), common_lot(p.lot_a, p.lot_b), Rounding.DOWN)
    intents: list[Intent] = []
    closes = list(e.closes)
    for key, held in (("a", a), ("b", b)):
        qty = min(abs(held) - target, abs(held))
        if qty <= 0:
            continue
        side = Side.SELL if held > 0 else Side.BUY
        order = _order(e, key, side, qty, f"rollback_{key}", reduce_only=True)
        if order is not None:
            intents.append(order)
            closes.append((key, qty, abs(held)))
    return attrs.evolve(e, closes=tuple(closes)), intents


def _act_unequal(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = saga.data
    if not e.cause:
        e = attrs.evolve(e, cause="legs unequal after both filled")
    return _act_close_difference(attrs.evolve(saga, data=e), signal)


def _act_close_both(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    """Exit: close each venue's reported position, reduce-only, by its reported size."""
    e = _answered(_with_snap(saga.data, signal), signal)
    snap = e.snap
    assert snap is not None
    e = _decided(attrs.evolve(e, attempt=e.attempt + 1), "exit")
    intents: list[Intent] = []
    closes = list(e.closes)
    for key in ("a", "b"):
        held = _pos(snap, key)
        if held == 0:
            continue
        side = Side.SELL if held > 0 else Side.BUY
        order = _order(e, key, side, abs(held), f"close_{key}", reduce_only=True)
        if order is not None:
            intents.append(order)
            closes.append((key, abs(held), abs(held)))
    return attrs.evolve(e, closes=tuple(closes)), intents


def _act_close_ended(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = _with_snap(saga.data, signal)
    leg = signal.kind.split("_ended")[0].split("_filled")[0].split("_refused")[0]
    return attrs.evolve(e, live=_gone(e, leg)), ()


def _nothing_live(saga: Saga[Entry], signal: Signal) -> bool:
    e = saga.data
    leg = signal.kind.split("_ended")[0].split("_filled")[0].split("_refused")[0]
    return not _gone(e, leg)


def _act_close_ended_refresh(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e, _ = _act_close_ended(saga, signal)
    return _refresh(e, (RefreshKind.POSITIONS,))


def _act_cancel_live(saga: Saga[Entry], signal: Signal) -> tuple[Entry, Sequence[Intent]]:
    e = _with_snap(saga.data, signal)
    return e, [Cancel(cloid=c) for c in e.live.values()]


def _none_live(saga: Saga[Entry], signal: Signal) -> bool:
    return not saga.data.live


# --- the tables --------------------------------------------------------------------------------

_P = Phase


def _build_entry(leg_ms: int, refresh_ms: int) -> SagaSpec:
    rows: dict[tuple[Any, str], Row | tuple[Row, ...]] = {
        (_P.REFRESHING, "refreshed"): (
            Row(
                to=_P.LEG1,
                act=_act_leg1,
                when=lambda s, g: _entry_ready(s, g) and _affordable(s, g),
            ),
            Row(to=_P.ABORTED, act=_act_unaffordable, when=_entry_ready),
            Row(to=None, act=_act_answer),
        ),
        (_P.REFRESHING, "refresh_failed"): Row(to=_P.ABORTED, act=_act_note),
        (_P.REFRESHING, DEADLINE): Row(to=_P.ABORTED, act=_act_note),
        # leg 1 on the first venue
        (_P.LEG1, "leg1_named"): Row(to=None, act=_act_named("leg1")),
        (_P.LEG1, "leg1_partial"): Row(to=None, act=_act_leg1_progress),
        (_P.LEG1, "leg1_filled"): (
            Row(to=_P.LEG2, act=_act_leg2, when=_hedgeable),
            Row(to=_P.ROLLBACK_REFRESH, act=_cause("leg 1 fill too small to hedge")),
        ),
        (_P.LEG1, "leg1_ended_part"): (
            Row(to=_P.LEG2, act=_act_leg2, when=_hedgeable),
            Row(to=_P.ROLLBACK_REFRESH, act=_cause("leg 1 fill too small to hedge")),
        ),
        (_P.LEG1, "leg1_ended_empty"): Row(to=_P.ABORTED, act=_act_leg_ended_empty("leg1")),
        (_P.LEG1, "leg1_refused"): Row(to=_P.ABORTED, act=_act_leg_ended_empty("leg1")),
        (_P.LEG1, DEADLINE): Row(to=_P.CANCELING_LEG1, act=_act_cancel("leg1")),
        (_P.CANCELING_LEG1, "leg1_partial"): Row(to=None, act=_act_leg1_progress),
        (_P.CANCELING_LEG1, "leg1_filled"): (
            Row(to=_P.LEG2, act=_act_leg2, when=_hedgeable),
            Row(to=_P.ROLLBACK_REFRESH, act=_cause("leg 1 fill too small to hedge")),
        ),
        (_P.CANCELING_LEG1, "leg1_ended_part"): (
            Row(to=_P.LEG2, act=_act_leg2, when=_hedgeable),
            Row(to=_P.ROLLBACK_REFRESH, act=_cause("leg 1 fill too small to hedge")),
        ),
        (_P.CANCELING_LEG1, "leg1_ended_empty"): Row(
            to=_P.ABORTED, act=_act_leg_ended_empty("leg1")
        ),
        (_P.CANCELING_LEG1, DEADLINE): (
            Row(to=_P.ROLLBACK_REFRESH, act=_act_leg1_overdue, when=_leg1_filled_some),
            Row(to=_P.CANCELING_LEG1, act=_act_cancel("leg1")),
        ),
        # leg 2 on the other venue, sized to leg 1's actual fill
        (_P.LEG2, "leg2_named"): Row(to=None, act=_act_named("leg2")),
        (_P.LEG2, "leg2_partial"): Row(to=None, act=_act_leg2_progress),
        (_P.LEG2, "leg2_filled"): Row(to=_P.VERIFYING, act=_act_verify),
        (_P.LEG2, "leg2_ended_part"): Row(to=_P.ROLLBACK_REFRESH, act=_cause("leg 2 canceled")),
        (_P.LEG2, "leg2_ended_empty"): Row(to=_P.ROLLBACK_REFRESH, act=_cause("leg 2 rejected")),
        (_P.LEG2, "leg2_refused"): Row(to=_P.ROLLBACK_REFRESH, act=_cause("leg 2 refused")),
        (_P.LEG2, DEADLINE): Row(to=_P.CANCELING_LEG2, act=_act_cancel("leg2")),
        (_P.CANCELING_LEG2, "leg2_partial"): Row(to=None, act=_act_leg2_progress),
        (_P.CANCELING_LEG2, "leg2_filled"): Row(to=_P.VERIFYING, act=_act_verify),
        (_P.CANCELING_LEG2, "leg2_ended_part"): Row(
            to=_P.ROLLBACK_REFRESH, act=_cause("leg 2 timed out")
        ),
        (_P.CANCELING_LEG2, "leg2_ended_empty"): Row(
            to=_P.ROLLBACK_REFRESH, act=_cause("leg 2 timed out")
        ),
        (_P.CANCELING_LEG2, DEADLINE): Row(to=_P.ROLLBACK_REFRESH, act=_act_cancel_and_refresh),
        # both legs ended: do the venues' positions match?
        (_P.VERIFYING, "refreshed"): (
            Row(to=_P.HEDGED, act=_act_done, when=lambda s, g: _matched(s, g) and not _flat(s, g)),
            Row(to=_P.ROLLED_BACK, act=_act_done, when=_flat),
            Row(to=_P.ROLLING_BACK, act=_act_unequal, when=_positions_known),
            Row(to=None, act=_act_answer),
        ),
        (_P.VERIFYING, DEADLINE): Row(to=_P.VERIFYING, act=_act_refresh_again),
        # rollback: positions asked for, then the reported difference closed, reduce-only
        (_P.ROLLBACK_REFRESH, "refreshed"): (
            Row(to=_P.HEDGED, act=_act_done, when=lambda s, g: _matched(s, g) and not _flat(s, g)),
            Row(to=_P.ROLLED_BACK, act=_act_done, when=_flat),
            Row(to=_P.STUCK, act=_act_stuck, when=_out_of_attempts),
            Row(to=_P.ROLLING_BACK, act=_act_close_difference, when=_positions_known),
            Row(to=None, act=_act_answer),
        ),
        (_P.ROLLBACK_REFRESH, DEADLINE): Row(to=_P.ROLLBACK_REFRESH, act=_act_refresh_again),
        (_P.ROLLING_BACK, DEADLINE): (
            Row(to=_P.ROLLBACK_REFRESH, act=_act_refresh_again, when=_none_live),
            Row(to=_P.ROLLING_BACK, act=_act_cancel_live),
        ),
    }
    _close_rows(rows, _P.ROLLING_BACK, "rollback", refresh=_P.ROLLBACK_REFRESH)
    # Late messages about the legs, in any later phase: book them; the next position check
    # sees their effect.
    for phase in (_P.LEG2, _P.CANCELING_LEG2, _P.VERIFYING, _P.ROLLBACK_REFRESH, _P.ROLLING_BACK):
        for kind in ("leg1_partial", "leg1_filled", "leg1_ended_part", "leg1_ended_empty"):
            rows[(phase, kind)] = Row(to=None, act=_act_late_leg1)
    for phase in (_P.VERIFYING, _P.ROLLBACK_REFRESH, _P.ROLLING_BACK):
        for kind in ("leg2_partial",):
            rows[(phase, kind)] = Row(to=None, act=_act_leg2_progress)
        for kind in ("leg2_filled", "leg2_ended_part", "leg2_ended_empty"):
            rows[(phase, kind)] = Row(to=None, act=_act_ended("leg2"))
    return SagaSpec(
        name=f"{KIND}_entry",
        initial=_P.REFRESHING,
        deadlines={
            _P.REFRESHING: refresh_ms,
            _P.LEG1: leg_ms,
            _P.CANCELING_LEG1: leg_ms,
            _P.LEG2: leg_ms,
            _P.CANCELING_LEG2: leg_ms,
            _P.VERIFYING: refresh_ms,
            _P.ROLLBACK_REFRESH: refresh_ms,
            _P.ROLLING_BACK: leg_ms,
        },
        terminal=frozenset({_P.HEDGED, _P.ROLLED_BACK, _P.ABORTED, _P.STUCK}),
        rows=rows,
    )


def _close_rows(
    rows: dict[tuple[Any, str], Row | tuple[Row, ...]], phase: Any, prefix: str, *, refresh: Any
) -> None:
    """The rows of a phase that closes both legs by reported size (a rollback, an exit): each
    close order's progress is booked, and when none is live the positions are asked again
    (``refresh``)."""
    for key in ("a", "b"):
        leg = f"{prefix}_{key}"
        rows[(phase, f"{leg}_named")] = Row(to=None, act=_act_named(leg))
        rows[(phase, f"{leg}_partial")] = Row(to=None, act=_act_note)
        # Refused by the kernel (a stale quote, a venue not ready): retrying in the same step
        # would be refused again, so the phase's deadline retries.
        rows[(phase, f"{leg}_refused")] = Row(to=None, act=_act_close_ended)
        for end in ("filled", "ended_part", "ended_empty"):
            rows[(phase, f"{leg}_{end}")] = (
                Row(to=refresh, act=_act_close_ended_refresh, when=_nothing_live),
                Row(to=None, act=_act_close_ended),
            )


def _build_exit(leg_ms: int, refresh_ms: int) -> SagaSpec:
    rows: dict[tuple[Any, str], Row | tuple[Row, ...]] = {
        (_P.EXIT_REFRESH, "refreshed"): (
            Row(to=_P.CLOSED, act=_act_done, when=_flat),
            Row(to=_P.STUCK, act=_act_stuck, when=_out_of_attempts),
            Row(to=_P.CLOSING, act=_act_close_both, when=_positions_known),
            Row(to=None, act=_act_answer),
        ),
        (_P.EXIT_REFRESH, DEADLINE): Row(to=_P.EXIT_REFRESH, act=_act_refresh_again),
        (_P.CLOSING, DEADLINE): (
            Row(to=_P.EXIT_REFRESH, act=_act_refresh_again, when=_none_live),
            Row(to=_P.CLOSING, act=_act_cancel_live),
        ),
    }
    _close_rows(rows, _P.CLOSING, "close", refresh=_P.EXIT_REFRESH)
    return SagaSpec(
        name=f"{KIND}_exit",
        initial=_P.EXIT_REFRESH,
        deadlines={_P.EXIT_REFRESH: refresh_ms, _P.CLOSING: leg_ms},
        terminal=frozenset({_P.CLOSED, _P.STUCK}),
        rows=rows,
    )


ENTRY = _build_entry(5_000, 5_000)
"""The hedged-entry table at the default deadlines (see :func:`specs` for configured ones)."""
EXIT = _build_exit(5_000, 5_000)
"""The exit table at the default deadlines."""

_SPECS: dict[tuple[int, int], tuple[SagaSpec, SagaSpec]] = {(5_000, 5_000): (ENTRY, EXIT)}


def specs(config: FundingArbConfig) -> tuple[SagaSpec, SagaSpec]:
    """The entry and exit tables with ``config``'s deadlines (built once per pair)."""
    key = (config.leg_timeout_ms, config.refresh_timeout_ms)
    found = _SPECS.get(key)
    if found is None:
        found = (_build_entry(*key), _build_exit(*key))
        _SPECS[key] = found
    return found


# --- the strategy ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Stats:
    """What the strategy did, for the backtest summary: counts, rollback causes, naked time,
    funding per venue (quote) and the edge last seen."""

    entries: int = 0
    hedged: int = 0
    exits: int = 0
    rollbacks: int = 0
    aborted: int = 0
    stuck: int = 0
    causes: Mapping[str, int] = attrs.field(factory=dict)
    exit_causes: Mapping[str, int] = attrs.field(factory=dict)
    naked_max_ms: int = 0
    naked_total_ms: int = 0
    funding_a: Decimal = ZERO
    funding_b: Decimal = ZERO


@attrs.frozen(kw_only=True)
class PairBook:
    """One pair's own state: its symbols and notional, the last funding rates seen on each
    venue, the position held (``long``: venue key bought, ``None`` when flat), its timers and
    figures. Every pair decides on its own book; the sagas live in :class:`FundingArb`."""

    symbol_a: str
    symbol_b: str
    notional: Decimal
    rate_a: Decimal | None = None
    rate_b: Decimal | None = None
    long: str | None = None
    opened_at: int | None = None
    last_end: int | None = None
    stopped: bool = False  # a saga of this pair ended STUCK: the pair opens nothing more
    stats: Stats = Stats()

    @property
    def name(self) -> str:
        """``symbol_a/symbol_b``: how reports name the pair."""
        return f"{self.symbol_a}/{self.symbol_b}"


def _books(arb: FundingArb) -> tuple[PairBook, ...]:
    return tuple(
        PairBook(symbol_a=a, symbol_b=b, notional=n) for a, b, n in arb.config.pair_symbols()
    )


def _sum_stats(books: Sequence[PairBook]) -> Stats:
    """Every pair's figures together (counts and times add; money is per venue, one currency
    per venue)."""
    if len(books) == 1:
        return books[0].stats
    causes: dict[str, int] = {}
    exit_causes: dict[str, int] = {}
    total = Stats()
    for book in books:
        s = book.stats
        for k, v in s.causes.items():
            causes[k] = causes.get(k, 0) + v
        for k, v in s.exit_causes.items():
            exit_causes[k] = exit_causes.get(k, 0) + v
        total = attrs.evolve(
            total,
            entries=total.entries + s.entries,
            hedged=total.hedged + s.hedged,
            exits=total.exits + s.exits,
            rollbacks=total.rollbacks + s.rollbacks,
            aborted=total.aborted + s.aborted,
            stuck=total.stuck + s.stuck,
            naked_max_ms=max(total.naked_max_ms, s.naked_max_ms),
            naked_total_ms=total.naked_total_ms + s.naked_total_ms,
            funding_a=add(total.funding_a, s.funding_a),
            funding_b=add(total.funding_b, s.funding_b),
        )
    return attrs.evolve(total, causes=causes, exit_causes=exit_causes)


@attrs.frozen(kw_only=True)
class FundingArb:
    """The funding-arbitrage strategy: its configuration, one :class:`PairBook` per symbol
    pair, and the sagas of every pair by id (ids are numbered across pairs).

    Pairs share the balance of each venue. Entries take turns (an entry starts only while no
    other pair's entry runs) and each counts the margin every running saga reserves: see
    :meth:`entry_locked`. Exits never wait: they only free margin."""

    config: FundingArbConfig
    leverage: Decimal = Decimal(10)
    seq: int = 0
    sagas: Mapping[str, Saga[Entry]] = attrs.field(factory=dict)
    books: tuple[PairBook, ...] = attrs.field(default=attrs.Factory(_books, takes_self=True))

    _PAIR_FIELDS = ("rate_a", "rate_b", "long", "opened_at", "last_end", "stopped", "stats")

    @classmethod
    def upgrade_stored(cls, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Read a state stored before pairs: its one pair's fields (rates, position, timers,
        figures) become the first pair's book, so a journal with both legs open resumes after an
        upgrade. Called by the journal codec with the decoded fields of a stored instance."""
        old = dict(fields)
        if "books" in old:
            return old
        moved = {k: old.pop(k) for k in cls._PAIR_FIELDS if k in old}
        config = old.get("config")
        if not isinstance(config, FundingArbConfig):
            raise ValueError("a stored FundingArb without its configuration")
        books = list(_books(cls(config=config)))
        books[0] = attrs.evolve(books[0], **moved)
        old["books"] = tuple(books)
        return old

    # --- the first pair, for one-pair configurations --------------------------------------------

    @property
    def stats(self) -> Stats:
        """Every pair's figures together (the one pair's, for a one-pair configuration)."""
        return _sum_stats(self.books)

    @property
    def long(self) -> str | None:
        """The first pair's position (see :attr:`PairBook.long`)."""
        return self.books[0].long

    @property
    def stopped(self) -> bool:
        """Some pair stopped after a STUCK saga."""
        return any(b.stopped for b in self.books)

    def _book(self, pair: int, book: PairBook) -> FundingArb:
        books = list(self.books)
        books[pair] = book
        return attrs.evolve(self, books=tuple(books))

    # --- reading the view --------------------------------------------------------------------

    def params(self, view: State[Any], pair: int = 0) -> Params:
        """The configuration the saga actions need, with the pair's instruments' filters."""
        c = self.config
        book = self.books[pair]
        ia = view.config.instrument(c.venue, book.symbol_a)
        ib = view.config.instrument(c.venue_b, book.symbol_b)
        return Params(
            venue_a=c.venue,
            venue_b=c.venue_b,
            symbol_a=book.symbol_a,
            symbol_b=book.symbol_b,
            tick_a=ia.tick_size,
            tick_b=ib.tick_size,
            lot_a=ia.lot_size,
            lot_b=ib.lot_size,
            min_notional_a=ia.min_notional,
            min_notional_b=ib.min_notional,
            leverage=self.leverage,
            slippage=c.slippage,
            max_attempts=c.max_attempts,
            max_report_age_ms=c.max_report_age_ms,
            margin_buffer=c.margin_buffer,
        )

    def snapshot(self, view: State[Any], pair: int = 0) -> Snapshot:
        """The pair's positions and mids, and the venues' balances, as the view holds them."""
        c = self.config
        book = self.books[pair]
        ba, bb = view.balance(c.venue), view.balance(c.venue_b)
        pa = view.ledger.position(c.venue, book.symbol_a)
        pb = view.ledger.position(c.venue_b, book.symbol_b)
        return Snapshot(
            now=view.now,
            pos_a=pa.qty,
            pos_b=pb.qty,
            avail_a=None if ba is None else ba.available,
            avail_b=None if bb is None else bb.available,
            bal_ts_a=None if ba is None else ba.ts,
            bal_ts_b=None if bb is None else bb.ts,
            mid_a=view.mid(c.venue, book.symbol_a),
            mid_b=view.mid(c.venue_b, book.symbol_b),
            reserved_other=self.reserved(pair),
        )

    def reserved(self, pair: int | None = None) -> Decimal:
        """Quote margin held by running sagas of every pair (each reserves it on both venues,
        whose balances every pair shares): what an entry of ``pair`` must leave untouched,
        whichever pair it is."""
        total = ZERO
        for saga in self.sagas.values():
            if not saga.terminal:
                total = add(total, saga.data.reserved)
        return total

    def active(self, pair: int | None = None) -> Saga[Entry] | None:
        """The running saga of ``pair`` (of any pair when ``None``), if any."""
        for saga in self.sagas.values():
            if not saga.terminal and (pair is None or saga.data.pair == pair):
                return saga
        return None

    def busy(self, pair: int = 0) -> bool:
        """A saga of ``pair`` runs: the pair starts nothing else (one saga per pair)."""
        return self.active(pair) is not None

    def entry_locked(self, pair: int = 0) -> bool:
        """Another pair's entry runs, so ``pair`` may not start one (failure
        `parallel-entries-overdraw`). Entries take turns because the venues' balances are
        shared and a balance report only tells what the venue held when it was taken: an
        entry that started after the previous one ended asks for balances after that end, so
        its report already shows the margin the previous entry's legs use. Counting the other
        sagas' reservations alone would not do: a report taken before another pair's leg
        filled may be read after that pair's saga ended and released its reservation."""
        return any(not saga.terminal and saga.data.kind == "entry" for saga in self.sagas.values())

    def edge(self, long: str, pair: int = 0) -> Decimal | None:
        """Annualized funding earned holding long on ``long`` and short on the other venue
        (fraction of notional per year); ``None`` before both rates are known."""
        book = self.books[pair]
        if book.rate_a is None or book.rate_b is None:
            return None
        c = self.config
        apr_a = div(mul(book.rate_a, YEAR_MS), Decimal(c.funding_interval_ms))
        apr_b = div(mul(book.rate_b, YEAR_MS), Decimal(c.funding_interval_ms_b))
        # Longs pay a positive rate, shorts receive it.
        return sub(apr_b, apr_a) if long == "a" else sub(apr_a, apr_b)

    def cost_apr(self, view: State[Any], pair: int = 0) -> Decimal | None:
        """Fees on both venues (entry and exit) and the spread crossed, annualized over the
        expected hold."""
        c = self.config
        book = self.books[pair]
        qa = view.quotes.get((c.venue, book.symbol_a))
        qb = view.quotes.get((c.venue_b, book.symbol_b))
        if qa is None or qb is None:
            return None
        ia = view.config.instrument(c.venue, book.symbol_a)
        ib = view.config.instrument(c.venue_b, book.symbol_b)
        fees = mul(Decimal(2), add(ia.taker_fee, ib.taker_fee))
        spread = add(div(sub(qa.ask, qa.bid), qa.mid), div(sub(qb.ask, qb.bid), qb.mid))
        hold = c.farm_hold_ms if c.mode == "farm" and c.farm_hold_ms else c.max_hold_ms
        return div(mul(add(fees, spread), YEAR_MS), Decimal(hold))

    # --- driving sagas -----------------------------------------------------------------------

    def _spec(self, saga: Saga[Entry]) -> SagaSpec:
        entry, exit_ = specs(self.config)
        return entry if saga.spec == entry.name else exit_

    def _feed(
        self, view: State[Any], saga_id: str, signal: Signal
    ) -> tuple[FundingArb, list[Intent]]:
        saga = self.sagas.get(saga_id)
        if saga is None:
            return self, []
        if isinstance(signal.detail, Detail) and saga.data.pair != 0:
            # Signals carry the first pair's snapshot: this saga reads its own pair's.
            detail = attrs.evolve(signal.detail, snap=self.snapshot(view, saga.data.pair))
            signal = attrs.evolve(signal, detail=detail)
        moved, intents = advance(self._spec(saga), saga, signal, view.now)
        if moved is saga:
            return self, intents
        new = attrs.evolve(self, sagas={**self.sagas, saga_id: moved})
        if moved.terminal and not saga.terminal:
            new = new._finished(view, moved)
        return new, intents

    def _finished(self, view: State[Any], saga: Saga[Entry]) -> FundingArb:
        e = _naked(saga.data, view.now)
        naked = e.naked_ms + (0 if e.naked_since is None else view.now - e.naked_since)
        book = self.books[e.pair]
        s = book.stats
        causes = dict(s.causes)
        rolled = any(p in (_P.ROLLBACK_REFRESH, _P.ROLLING_BACK) for p in saga.history)
        if rolled and e.cause:
            causes[e.cause] = causes.get(e.cause, 0) + 1
        phase = saga.phase
        exit_causes = dict(s.exit_causes)
        if phase is _P.CLOSED:
            exit_causes[e.cause] = exit_causes.get(e.cause, 0) + 1
        s = attrs.evolve(
            s,
            hedged=s.hedged + (phase is _P.HEDGED),
            exits=s.exits + (phase is _P.CLOSED),
            rollbacks=s.rollbacks + rolled,
            aborted=s.aborted + (phase is _P.ABORTED),
            stuck=s.stuck + (phase is _P.STUCK),
            causes=causes,
            exit_causes=exit_causes,
            naked_max_ms=max(s.naked_max_ms, naked),
            naked_total_ms=s.naked_total_ms + naked,
        )
        kept = dict(self.sagas)
        done = [k for k, v in kept.items() if v.terminal]
        for old in done[: max(0, len(done) - self.config.sagas_kept)]:
            del kept[old]
        book = attrs.evolve(book, stats=s, last_end=view.now)
        if phase is _P.HEDGED:
            book = attrs.evolve(book, long=e.long, opened_at=view.now)
        elif phase in (_P.CLOSED, _P.ROLLED_BACK, _P.ABORTED):
            book = attrs.evolve(book, long=None, opened_at=None)
        else:  # STUCK
            book = attrs.evolve(book, stopped=True)
        return attrs.evolve(self, sagas=kept)._book(e.pair, book)

    def _begin(
        self, view: State[Any], kind: str, long: str, why: str = "", pair: int = 0
    ) -> tuple[FundingArb, list[Intent]]:
        c = self.config
        book = self.books[pair]
        entry_spec, exit_spec = specs(c)
        seq = self.seq + 1
        saga_id = f"{kind[0]}{seq}"
        snap = self.snapshot(view, pair)
        params = self.params(view, pair)
        qty = ZERO
        notional = book.notional
        if kind == "entry" and snap.mid_a is not None and snap.mid_b is not None:
            mid = max(snap.mid_a, snap.mid_b)
            qty = round_to_step(
                div(notional, mid), common_lot(params.lot_a, params.lot_b), Rounding.DOWN
            )
        data = Entry(
            saga_id=saga_id,
            kind=kind,
            pair=pair,
            long=long,
            first=c.first_leg,
            qty=qty,
            notional=notional,
            snap=snap,
            params=params,
            cause=why,
        )
        what = (
            (RefreshKind.BALANCES, RefreshKind.POSITIONS)
            if kind == "entry"
            else (RefreshKind.POSITIONS,)
        )
        data, refreshes = _refresh(data, what)
        data = _naked(data, view.now)
        spec = entry_spec if kind == "entry" else exit_spec
        saga, timers = start(spec, saga_id, data, view.now)
        if kind == "entry":
            book = attrs.evolve(
                book, stats=attrs.evolve(book.stats, entries=book.stats.entries + 1)
            )
        new = attrs.evolve(self, seq=seq, sagas={**self.sagas, saga_id: saga})._book(pair, book)
        return new, [*refreshes, *timers]

    def _signal(self, view: State[Any], kind: str, qty: Decimal = ZERO, **detail: Any) -> Signal:
        return Signal(kind=kind, qty=qty, detail=Detail(snap=self.snapshot(view), **detail))

    # --- decisions -----------------------------------------------------------------------------

    def decide(self, view: State[Any]) -> tuple[FundingArb, list[Intent]]:
        """Start an entry or an exit on every pair whose rules say so and whose saga (or,
        for an entry, another pair's entry) is not running."""
        new, out = self, []
        for pair in range(len(self.books)):
            new, intents = new.decide_pair(view, pair)
            out.extend(intents)
        return new, out

    def decide_pair(self, view: State[Any], pair: int) -> tuple[FundingArb, list[Intent]]:
        """Start an entry or an exit of ``pair`` when its rules say so."""
        c = self.config
        book = self.books[pair]
        if book.stopped or self.busy(pair):
            return self, []
        if c.venue_b not in view.config.venues or c.venue not in view.config.venues:
            return self, []  # run on one venue only (a single-venue runner): nothing to pair
        if not (view.can_trade(c.venue) and view.can_trade(c.venue_b)):
            return self, []
        for venue, symbol in ((c.venue, book.symbol_a), (c.venue_b, book.symbol_b)):
            quote = view.quotes.get((venue, symbol))
            if quote is None or view.now - quote.ts > c.max_report_age_ms:
                return self, []  # no price to trade at: its orders would be refused
        if book.long is not None:
            return self._maybe_exit(view, pair)
        snap = self.snapshot(view, pair)
        if snap.pos_a != 0 or snap.pos_b != 0:
            # Flat by our books but not at the venues (a restart, an old saga's late fill):
            # close what is there before anything else.
            return self._begin(view, "exit", "a", "positions found", pair=pair)
        if book.last_end is not None and view.now - book.last_end < c.cooldown_ms:
            return self, []
        if self.entry_locked(pair):
            return self, []  # another pair's entry runs: this one waits its turn
        if c.mode == "farm":
            edge_a = self.edge("a", pair) or ZERO
            edge_b = self.edge("b", pair) or ZERO
            return self._begin(view, "entry", "a" if edge_a >= edge_b else "b", pair=pair)
        cost = self.cost_apr(view, pair)
        best: tuple[Decimal, str] | None = None
        for long in ("a", "b"):
            edge = self.edge(long, pair)
            if edge is not None and (best is None or edge > best[0]):
                best = (edge, long)
        if best is None or cost is None or sub(best[0], cost) < c.entry_apr:
            return self, []
        return self._begin(view, "entry", best[1], pair=pair)

    def _maybe_exit(self, view: State[Any], pair: int = 0) -> tuple[FundingArb, list[Intent]]:
        c = self.config
        book = self.books[pair]
        assert book.long is not None
        held = view.now - (book.opened_at or view.now)
        edge = self.edge(book.long, pair)
        why = ""
        if c.mode == "farm":
            if c.farm_hold_ms is not None and held >= c.farm_hold_ms:
                why = "farm hold"
        elif held >= c.max_hold_ms:
            why = "max hold"
        elif edge is not None and edge < 0:
            why = "flipped"
        elif edge is not None and edge < c.exit_apr:
            why = "below exit_apr"
        if not why:
            return self, []
        return self._begin(view, "exit", book.long, why, pair=pair)

    # --- the Strategy protocol -----------------------------------------------------------------

    def on_tick(
        self, view: State[Any], tick: QuoteTicked
    ) -> tuple[FundingArb, Sequence[Intent]] | None:
        if self.config.mode != "farm" and all(b.long is None for b in self.books):
            return None  # arb entries are decided on funding updates
        new, intents = self.decide(view)
        return None if new is self else (new, intents)

    def on_changes(
        self, view: State[Any], changes: Sequence[OrderChange]
    ) -> tuple[FundingArb, Sequence[Intent]]:
        new, out = self, []
        for change in changes:
            found = _signal_for_change(change)
            if found is not None:
                saga_id, kind, qty, cloid = found
                new, intents = new._feed(view, saga_id, new._signal(view, kind, qty, cloid=cloid))
                out.extend(intents)
        return new, out

    def on_ready(self, view: State[Any], venue: str) -> tuple[FundingArb, Sequence[Intent]]:
        return self.decide(view)

    def on_timer(self, view: State[Any], name: str) -> tuple[FundingArb, Sequence[Intent]]:
        saga_id = deadline_signal(name)
        if saga_id is not None:
            new, intents = self._feed(view, saga_id, self._signal(view, DEADLINE))
            saga = new.sagas.get(saga_id)
            if saga is None or saga.terminal:
                # The pair is free again (and, after an entry, so are the other pairs' entries).
                more, extra = new.decide(view)
                return more, [*intents, *extra]
            return new, intents
        if name == "gridcore:maintenance":  # the periodic re-check of the entry and exit rules
            return self.decide(view)
        return self, ()

    def _pair_of(self, venue: str, symbol: str) -> tuple[int, str] | None:
        """``(pair, venue key)`` of a venue's symbol, else ``None``."""
        c = self.config
        for n, book in enumerate(self.books):
            if (venue, symbol) == (c.venue, book.symbol_a):
                return n, "a"
            if (venue, symbol) == (c.venue_b, book.symbol_b):
                return n, "b"
        return None

    def on_event(self, view: State[Any], event: Event) -> tuple[FundingArb, Sequence[Intent]]:
        if isinstance(event, FundingRateUpdated):
            found = self._pair_of(event.venue, event.symbol)
            if found is None:
                return self, ()
            pair, key = found
            book = self.books[pair]
            if key == "a":
                book = attrs.evolve(book, rate_a=event.rate)
            else:
                book = attrs.evolve(book, rate_b=event.rate)
            return self._book(pair, book).decide(view)
        if isinstance(event, FundingPaid):
            found = self._pair_of(event.venue, event.symbol)
            if found is None:
                return self, ()
            pair, key = found
            book = self.books[pair]
            s = book.stats
            if key == "a":
                s = attrs.evolve(s, funding_a=add(s.funding_a, event.amount))
            else:
                s = attrs.evolve(s, funding_b=add(s.funding_b, event.amount))
            return self._book(pair, attrs.evolve(book, stats=s)), ()
        return self, ()

    def on_stimulus(
        self, view: State[Any], stimulus: Stimulus
    ) -> tuple[FundingArb, Sequence[Intent]]:
        active = self.active()
        if isinstance(stimulus, SubmitRefused):
            ref = stimulus.ref
            if isinstance(ref, tuple) and len(ref) == 3:
                signal = self._signal(view, f"{ref[1]}_refused", code=stimulus.code)
                return self._feed(view, str(ref[0]), signal)
            return self, ()
        if not isinstance(stimulus, Refreshed | RefreshFailed) or active is None:
            return self, ()
        p = active.data.params
        assert p is not None
        key = p.key_of(stimulus.venue)
        if key is None:
            return self, ()
        if isinstance(stimulus, Refreshed):
            refresh = (key, stimulus.what.value, stimulus.asked_ts, stimulus.report_ts)
            signal = self._signal(view, "refreshed", refresh=refresh)
        else:
            signal = self._signal(view, "refresh_failed")
        # Every running saga (of every pair: the venues' reports cover every symbol) hears it:
        # each keeps only answers to its own latest request.
        new: FundingArb = self
        out: list[Intent] = []
        for saga in self.sagas.values():
            if not saga.terminal:
                new, intents = new._feed(view, saga.saga_id, signal)
                out.extend(intents)
        return new, out

    # --- for the backtest summary ----------------------------------------------------------------

    def summary_figures(self, view: State[Any]) -> list[tuple[str, str]]:
        """Figures the backtest prints under its summary: what this strategy did (with several
        pairs: every pair's together, then each pair's, labelled ``symbol_a/symbol_b``)."""
        c = self.config
        venues = (c.venue, c.venue_b)
        if len(self.books) == 1:
            fees = ZERO
            for pos in view.ledger.positions.values():
                fees = add(fees, pos.fees)
            return [
                *_stats_rows("", self.stats, venues),
                *_funding_checks(view, venues),
                ("fees", _money(fees)),
                ("net PnL", _money(view.net_pnl())),
            ]
        rows = [
            ("pairs", str(len(self.books))),
            *_stats_rows("", self.stats, venues),
            *_funding_checks(view, venues),
            *_money_rows("", self._money_by_currency(view, None)),
        ]
        for n, book in enumerate(self.books):
            rows.extend(_stats_rows(f"{book.name} ", book.stats, venues))
            rows.extend(_money_rows(f"{book.name} ", self._money_by_currency(view, n)))
        return rows

    def _money_by_currency(
        self, view: State[Any], pair: int | None
    ) -> dict[str, tuple[Decimal, Decimal]]:
        """``currency -> (fees, net PnL)`` over the positions of ``pair`` (every pair's when
        ``None``); net PnL is realized − fees + funding + unrealized at the last mids, and
        amounts in different settlement currencies are never added."""
        c = self.config
        books = self.books if pair is None else (self.books[pair],)
        keys = {(c.venue, b.symbol_a) for b in books} | {(c.venue_b, b.symbol_b) for b in books}
        out: dict[str, tuple[Decimal, Decimal]] = {}
        for (venue, symbol, _side), pos in view.ledger.positions.items():
            if (venue, symbol) not in keys:
                continue
            currency = view.config.instrument(venue, symbol).settlement
            fees, net = out.get(currency, (ZERO, ZERO))
            mid = view.mid(venue, symbol)
            if pos.qty != 0 and mid is not None:
                net = add(net, pos.unrealized(mid))
            out[currency] = (add(fees, pos.fees), add(net, pos.net))
        return out

    def pair_figures(self, view: State[Any]) -> list[dict[str, Any]]:
        """Each pair's figures for ``--json`` (strings for money, integers for counts and
        milliseconds): entries, exits, rollbacks by cause, naked exposure, funding per venue,
        fees and net PnL per settlement currency."""
        c = self.config
        out = []
        for n, book in enumerate(self.books):
            s = book.stats
            money = self._money_by_currency(view, n)
            out.append(
                {
                    "pair": book.name,
                    "symbol_a": book.symbol_a,
                    "symbol_b": book.symbol_b,
                    "entries": s.entries,
                    "hedged": s.hedged,
                    "aborted": s.aborted,
                    "exits": s.exits,
                    "exit_causes": dict(sorted(s.exit_causes.items())),
                    "rollbacks": s.rollbacks,
                    "rollback_causes": dict(sorted(s.causes.items())),
                    "stuck": s.stuck,
                    "naked_max_ms": s.naked_max_ms,
                    "naked_total_ms": s.naked_total_ms,
                    "funding": {c.venue: str(s.funding_a), c.venue_b: str(s.funding_b)},
                    "fees": {k: str(v[0]) for k, v in money.items()},
                    "net_pnl": {k: str(v[1]) for k, v in money.items()},
                }
            )
        return out


def _stats_rows(label: str, s: Stats, venues: tuple[str, str]) -> list[tuple[str, str]]:
    causes = ", ".join(f"{k}: {v}" for k, v in sorted(s.causes.items())) or "none"
    exits = ", ".join(f"{k}: {v}" for k, v in sorted(s.exit_causes.items())) or "none"
    return [
        (f"{label}entries", f"{s.entries} started, {s.hedged} hedged, {s.aborted} aborted"),
        (f"{label}exits", f"{s.exits} ({exits})"),
        (f"{label}rollbacks", f"{s.rollbacks} ({causes})"),
        (f"{label}stuck (alert)", str(s.stuck)),
        (f"{label}naked exposure", f"max {s.naked_max_ms} ms, total {s.naked_total_ms} ms"),
        (f"{label}funding {venues[0]}", _money(s.funding_a)),
        (f"{label}funding {venues[1]}", _money(s.funding_b)),
    ]


def _money_rows(label: str, money: Mapping[str, tuple[Decimal, Decimal]]) -> list[tuple[str, str]]:
    rows = []
    for currency, (fees, net) in money.items():
        rows.append((f"{label}fees {currency}", _money(fees)))
        rows.append((f"{label}net PnL {currency}", _money(net)))
    return rows


def _funding_checks(view: State[Any], venues: tuple[str, ...]) -> list[tuple[str, str]]:
    """Per venue: payments booked, recovered from the venue's funding history, and off the
    expected amount (rate × position × mark) with their sum (failure `funding-drift`)."""
    rows = []
    for venue in venues:
        status = view.venues.get(venue)
        if status is None:
            continue
        f = status.funding
        rows.append(
            (
                f"funding checks {venue}",
                f"{f.paid} paid, {f.recovered} recovered, {f.checked_payments} priced, "
                f"{f.drifts} off expected ({_money(f.drift_amount)})",
            )
        )
    return rows


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.0001')):,}"


def _signal_for_change(change: OrderChange) -> tuple[str, str, Decimal, str | None] | None:
    """``(saga id, signal kind, booked qty, cloid)`` for a change of a saga's order."""
    ref = change.ref
    if not (isinstance(ref, tuple) and len(ref) == 3):
        return None
    saga_id, leg, _attempt = ref
    after = change.after
    if change.before is None:
        return str(saga_id), f"{leg}_named", ZERO, after.cloid
    if after.status is OrderStatus.FILLED and after.filled_qty >= after.qty:
        return str(saga_id), f"{leg}_filled", after.filled_qty, after.cloid
    if after.status is OrderStatus.FILLED:
        # Filled by the venue's word but not every fill booked yet: only booked quantity counts.
        return str(saga_id), f"{leg}_partial", after.filled_qty, after.cloid
    if after.status in (OrderStatus.CANCELED, OrderStatus.REJECTED):
        end = "ended_part" if after.filled_qty > 0 else "ended_empty"
        return str(saga_id), f"{leg}_{end}", after.filled_qty, after.cloid
    if change.fill is not None:
        return str(saga_id), f"{leg}_partial", after.filled_qty, after.cloid
    return None


# --- invariants ---------------------------------------------------------------------------------


def _arbs(state: State[Any]) -> FundingArb | None:
    strategy = state.strategy
    return strategy if isinstance(strategy, FundingArb) else None


def naked_exposure_bounded(state: State[Any]) -> list[Violation]:
    """Failure `racing-legs`: the two venues' positions never differ for longer than
    ``max_naked_ms`` unless a rollback or close step is active."""
    arb = _arbs(state)
    if arb is None:
        return []
    out = []
    for saga in arb.sagas.values():
        e = saga.data
        if saga.terminal or e.naked_since is None or saga.phase in ACTIVE_CLOSE:
            continue
        if state.now - e.naked_since > arb.config.max_naked_ms:
            out.append(
                Violation(
                    invariant="funding_naked_exposure_bounded",
                    ts=state.now,
                    detail=f"saga {saga.saga_id} unhedged since {e.naked_since} in {saga.phase} "
                    f"with no rollback step ({state.now - e.naked_since} ms)",
                )
            )
    return out


def sagas_end_flat_or_hedged(state: State[Any]) -> list[Violation]:
    """Every saga that ended saw both venues flat (or equal and opposite, for ``HEDGED``) in
    reports newer than its last request, or raised an alert (``STUCK``)."""
    arb = _arbs(state)
    if arb is None:
        return []
    out = []
    for saga in arb.sagas.values():
        if not saga.terminal or saga.phase in (_P.STUCK, _P.ABORTED):
            continue
        snap = saga.data.snap
        if snap is None:
            continue
        a, b = snap.pos_a, snap.pos_b
        ok = (a == -b and a != 0) if saga.phase is _P.HEDGED else (a == 0 and b == 0)
        if not ok:
            out.append(
                Violation(
                    invariant="funding_saga_ends_flat_or_hedged",
                    ts=state.now,
                    detail=f"saga {saga.saga_id} ended {saga.phase} with positions a {a}, b {b}",
                )
            )
    return out


def rollback_within_position(state: State[Any]) -> list[Violation]:
    """Failure `rollback-in-quote`: a rollback or close never asks for more than the position
    it closes (base units, read from the venue's report)."""
    arb = _arbs(state)
    if arb is None:
        return []
    out = []
    for saga in arb.sagas.values():
        for key, qty, held in saga.data.closes:
            if qty > held:
                out.append(
                    Violation(
                        invariant="funding_rollback_within_position",
                        ts=state.now,
                        detail=f"saga {saga.saga_id} closes {qty} on {key} holding {held}",
                    )
                )
    return out


def decisions_on_fresh_reports(state: State[Any]) -> list[Violation]:
    """Failures `stale-balance`, `stale-position-cache`: every entry, rollback and exit decision
    was taken on reports that answer its own request (or a later one: the kernel's
    ``Refreshed``), none older than ``max_report_age_ms`` when the decision was taken."""
    arb = _arbs(state)
    if arb is None:
        return []
    out = []
    limit = arb.config.max_report_age_ms
    for saga in arb.sagas.values():
        for d in saga.data.decisions:
            for answers, ts in zip(d.answers, d.report_ts, strict=True):
                if answers < d.asked_at or d.at - ts > limit:
                    out.append(
                        Violation(
                            invariant="funding_decision_on_fresh_report",
                            ts=state.now,
                            detail=f"saga {saga.saga_id}: {d.what} at {d.at} on a report of {ts} "
                            f"answering a request of {answers} (this decision asked at "
                            f"{d.asked_at}; age limit {limit} ms)",
                        )
                    )
    return out


def reservations_within_balance(state: State[Any]) -> list[Violation]:
    """Failure `parallel-entries-overdraw`: the margin reserved by the entries running at once
    never exceeds the fresh available balance any of them was decided on."""
    arb = _arbs(state)
    if arb is None:
        return []
    reserved = ZERO
    seen: Decimal | None = None
    running = []
    for saga in arb.sagas.values():
        e = saga.data
        if saga.terminal or e.reserved <= 0 or e.avail_seen is None:
            continue
        reserved = add(reserved, e.reserved)
        seen = e.avail_seen if seen is None else min(seen, e.avail_seen)
        running.append(saga.saga_id)
    if seen is None or reserved <= seen:
        return []
    return [
        Violation(
            invariant="funding_reservations_within_balance",
            ts=state.now,
            detail=f"entries {', '.join(running)} reserve {reserved} in all; the smallest "
            f"available balance they were decided on is {seen}",
        )
    ]


INVARIANTS = (
    naked_exposure_bounded,
    sagas_end_flat_or_hedged,
    rollback_within_position,
    decisions_on_fresh_reports,
    reservations_within_balance,
)


def build(config: FundingArbConfig, bot: BotConfig) -> FundingArb:
    """The initial strategy (the registry's factory)."""
    return FundingArb(config=config, leverage=bot.venue.leverage)


KIND_SPEC = register(
    StrategyKind(
        name=KIND,
        config_class=FundingArbConfig,
        strategy_class=FundingArb,
        build=build,
        check=check,
        codec_classes={
            f"{KIND}:{cls.__qualname__}": cls
            for cls in (
                FundingArb,
                FundingArbConfig,
                PairConfig,
                PairBook,
                Entry,
                Params,
                Snapshot,
                Detail,
                Decision,
                Stats,
                Phase,
            )  # Saga itself is the kernel's (the codec knows it already)
        },
        invariants=INVARIANTS,
        summary="two-venue funding-rate arbitrage with hedged entries and rollback",
    )
)

"""Paper trading on two simulated venues: the funding-rate arbitrage through ``gridcore run``.

Theory of operation
-------------------
A ``funding_arb`` configuration names two venues: venue a (``[venue]``/``[instrument]``) and
venue b (``[funding_arb] venue_b``, ``symbol_b`` and b's filters and fees). ``gridcore run``
without ``--live`` runs the bot against two simulated venues in one process, on one
:class:`~gridcore.shells.runtime.LockstepClock` and one :class:`~gridcore.shells.runtime.Runtime`:

* **Venues.** Each venue is a :class:`~gridcore.shells.simvenue.SimVenue` over a
  :class:`gridcore.sim.funding.FundingVenue` (the backtest's two venues: each pays its own
  seeded funding-rate path at its own interval and publishes the coming rate), with its own
  fault injector (seeded apart, so the two venues fail independently).
* **Storage.** Both venues keep their state in the journal, each its rows of the ``venues`` and
  ``venues_log`` tables (keyed by the venue's name: :meth:`VenueStore.in_journal
  <gridcore.shells.simvenue.VenueStore.in_journal>`), written in the journal's own
  transactions: both venues' effects and the events that caused them are durable together or
  not at all, so the runtime group-commits the pair session as it does a one-venue one
  (``commits_with``). A killed bot restarts against both venues as the journal's last commit
  left them: positions open on both legs stay open, and the kernel reconciles each venue on
  ``Started`` (fills, open orders, positions, balances and funding payments since the last
  seen). A journal written before the venues moved into it keeps its venues in their own files
  (venue a in ``JOURNAL.venue``, venue b in ``JOURNAL.<venue_b>.venue``, each written before
  its venue answers; every command then waits for the commit of its event) and resumes on
  them: :func:`in_journal` decides which, the journal's rows first.
* **Routing.** The runtime routes each command to the adapter named by the command's venue,
  with one concurrency limiter and one FIFO queue per venue, and runs one feed per venue: a
  slow or failing venue never holds the other back.
* **Market.** One :class:`PairMarket` walks the seeded market of ``[market]`` and hands each
  tick to venue a as is and to venue b on b's instrument (b's symbol, its prices rounded to b's
  tick outward), at the same time: the two venues quote the same perpetual. With several pairs
  (``[[funding_arb.pairs]]``) each venue lists every pair's instrument, pays each symbol its
  own funding path, and gets, with each tick, every further pair's quote (the tick scaled to
  the pair's ``sim_start_price``, on the pair's instrument: :class:`PairVenue`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from gridcore.config import BotConfig
from gridcore.events import QuoteTicked
from gridcore.instruments import Instrument
from gridcore.numbers import CTX, Rounding
from gridcore.shells.journal import Journal
from gridcore.shells.runtime import Clock
from gridcore.shells.simvenue import (
    SharedMarket,
    SimVenue,
    VenueState,
    VenueStore,
    VenueStoreError,
    saved_venue,
    venue_path,
)
from gridcore.sim import profile
from gridcore.sim.faults import FaultInjector
from gridcore.sim.funding import (
    FundingVenue,
    handles,
    pair_instruments,
    pair_scales,
    second_instrument,
    venues,
)

__all__ = [
    "PairMarket",
    "PairVenue",
    "handles",
    "in_journal",
    "open_pair_venue",
    "pair_fingerprint",
    "pair_names",
    "pair_venue_path",
    "pair_venues",
    "saved_pair_venue",
    "stored_in_journal",
]

#: Venue b's delayed-message keys start here, so that the two venues' deliveries due at the
#: same simulated time never share a clock key (each venue numbers its own from 0).
_B_DELIVERIES = 1 << 48


def pair_venue_path(journal: str | os.PathLike[str], config: BotConfig, which: int) -> Path:
    """The file of venue ``which`` (0: venue a, 1: venue b) of the journal at ``journal``, in
    a session whose venues live in files (one written before they moved into the journal)."""
    if which == 0:
        return venue_path(journal)
    return Path(f"{os.fspath(journal)}.{config.settings.venue_b}.venue")


def pair_names(config: BotConfig) -> tuple[str, str]:
    """The names of venue a and venue b (their keys in the journal's ``venues`` tables)."""
    return config.venue.name, config.settings.venue_b


def stored_in_journal(journal: Journal) -> set[str] | None:
    """The names of the venues whose state ``journal`` holds (its ``venues`` table), or
    ``None`` when the journal predates that table."""
    tables = journal.side_rows("SELECT count(*) FROM sqlite_master WHERE name = 'venues'")
    if not tables[0][0]:
        return None
    return {name for (name,) in journal.side_rows("SELECT name FROM venues")}


def in_journal(journal: Journal | None, path: Path, config: BotConfig) -> bool:
    """Where the pair's venues of the journal at ``path`` live (``journal``: it, opened;
    ``None``: it is new): ``True`` in the journal, ``False`` in their ``.venue`` files.

    The journal's rows first; else the files, if either exists (a journal written before the
    venues moved into it, or files left beside a new journal's path, which the session
    refuses if they were traded); else the journal, when it has the ``venues`` tables (a new
    journal, or one that committed nothing yet). Raises :class:`VenueStoreError` when a journal
    that holds events has lost a venue's state (neither its rows nor its file, or one file of
    the two)."""
    files = [pair_venue_path(path, config, which) for which in (0, 1)]
    stored = None if journal is None else stored_in_journal(journal)
    names = pair_names(config)
    if stored:
        missing = [n for n in names if n not in stored]
        if missing:
            raise VenueStoreError(
                f"{path}: the journal holds simulated venue {sorted(stored)} but not "
                f"{missing}: it was damaged or written by another configuration; resume with "
                f"the journal's configuration, or start a new journal"
            )
        return True
    if any(f.exists() for f in files):
        lost = [f for f in files if not f.exists()]
        if lost and journal is not None and journal.last_seq > 0:
            raise VenueStoreError(
                f"the simulated venue's file {lost[0]} is missing: the journal's orders and "
                f"positions on that venue live there; restore it, or start a new journal"
            )
        return False
    if journal is None:
        return True
    if journal.last_seq > 0:
        raise VenueStoreError(
            f"{path}: the simulated venues' state is neither in the journal nor in its files "
            f"{files[0].name} and {files[1].name}: the journal's orders and positions live "
            f"there; restore them, or start a new journal"
        )
    return stored is not None


def saved_pair_venue(
    journal: str | os.PathLike[str], config: BotConfig, which: int
) -> VenueState | None:
    """Venue ``which`` (0: a, 1: b) of the pair session of the journal at ``journal``,
    read-only: from the journal's rows, else from its ``.venue`` file (older sessions);
    ``None`` when neither holds it."""
    state = saved_venue(journal, pair_names(config)[which])
    if state is not None:
        return state
    path = pair_venue_path(journal, config, which)
    if not path.exists():
        return None
    store = VenueStore(path)
    try:
        return store.load()
    finally:
        store.close()


def pair_fingerprint(config: BotConfig, which: int) -> str:
    """What must not change between runs against one venue file of the pair (a one-pair
    configuration keeps the fingerprint it had before several pairs existed, so that its venue
    files resume)."""
    settings = repr(config.settings)
    if not config.settings.pairs:
        settings = settings.replace(", pairs=()", "")
    parts = ("funding_arb", which, config.venue, config.instrument, config.market)
    return f"({', '.join(map(repr, parts))}, {settings})"


def _fresh(config: BotConfig, which: int, seed: int) -> FundingVenue:
    m = config.market
    s = config.settings
    pair = venues(
        config,
        start_ts=m.start_ts,
        intervals=m.ticks * m.interval_ms // s.funding_interval_ms + 2,
        seed=seed,
    )
    return pair[which]


def open_pair_venue(
    store: VenueStore, config: BotConfig, which: int, *, seed: int | None, faults: str | None
) -> tuple[VenueState, list[str]]:
    """The saved venue ``which`` of the pair (or a fresh one), with notes on what changed; the
    rules of :func:`gridcore.shells.simvenue.open_venue_state`, on the funding venues."""
    notes: list[str] = []
    name = config.venue.name if which == 0 else config.settings.venue_b
    saved = store.load()
    if saved is None:
        use_seed = config.market.seed if seed is None else seed
        plan = profile(faults or "none")
        state = VenueState(
            exchange=_fresh(config, which, use_seed),
            # Seeded apart: the two venues' faults are independent draws.
            injector=FaultInjector(plan, use_seed * 2 + which),
            seed=use_seed,
            faults=plan.name,
            fingerprint=pair_fingerprint(config, which),
            now=config.market.start_ts,
        )
        store.save(state)
        return state, notes
    if saved.fingerprint != pair_fingerprint(config, which):
        raise VenueStoreError(
            f"{store.path}: simulated venue {name!r} was created with another configuration; "
            f"resume with the journal's configuration"
        )
    if seed is not None and seed != saved.seed:
        raise VenueStoreError(
            f"{store.path}: simulated venue {name!r} runs seed {saved.seed}, not {seed}; omit "
            f"--seed to resume it"
        )
    if faults is not None and faults != saved.faults:
        plan = profile(faults)
        saved.injector.plan = plan
        saved.injector.enabled = plan.active
        notes.append(f"venue {name}: fault profile {saved.faults} -> {plan.name}")
        saved.faults = plan.name
        store.save(saved)
    return saved, notes


def pair_venues(
    config: BotConfig,
    states: Sequence[tuple[VenueState, VenueStore]],
    clock: Clock,
) -> tuple[list[SimVenue], PairMarket]:
    """The two venues' adapters on ``clock``, following one :class:`PairMarket`."""
    a_state, _ = states[0]
    market = PairMarket(config=config, seed=a_state.seed, clock=clock)
    out: list[SimVenue] = []
    for which, (state, store) in enumerate(states):
        venue = PairVenue(config=config, state=state, store=store, clock=clock, market=market)
        if which == 1:
            # The adapter is named by its venue (commands are routed by it); its config is the
            # bot's, whose [venue] is venue a.
            venue.name = config.settings.venue_b
            venue._deliveries = _B_DELIVERIES
        out.append(venue)
    market.instruments = {
        out[0].name: config.make_instrument(),
        out[1].name: second_instrument(config),
    }
    pairs = pair_instruments(config)
    scales = pair_scales(config)
    market.others = {
        venue.name: [
            (pair[which], scale) for pair, scale in zip(pairs[1:], scales[1:], strict=True)
        ]
        for which, venue in enumerate(out)
    }
    return out, market


class PairMarket(SharedMarket):
    """One seeded market quoted by the two venues of a pair: each tick goes to venue a as is
    and to venue b on b's instrument, at the same time (see the module docstring); with
    several pairs, each venue then gets every further pair's quote at that time, the tick
    scaled to the pair's price (``sim_start_price``) on the pair's instrument."""

    def __init__(self, *, config: BotConfig, seed: int, clock: Clock) -> None:
        super().__init__(config=config, seed=seed, clock=clock)
        self.instruments: dict[str, Instrument] = {}
        self.others: dict[str, list[tuple[Instrument, Decimal]]] = {}
        """Per venue name, the further pairs' instruments and their price factors."""
        self.raw: QuoteTicked | None = None
        """The market's tick being handed out (the further pairs' quotes scale it)."""

    def _quote(self, venue: SimVenue, tick: QuoteTicked) -> QuoteTicked:
        self.raw = tick
        inst = self.instruments.get(venue.name)
        if inst is None or (inst.venue, inst.symbol) == (tick.venue, tick.symbol):
            return tick
        return QuoteTicked(
            ts=tick.ts,
            venue=inst.venue,
            symbol=inst.symbol,
            bid=inst.round_price(tick.bid, Rounding.DOWN),
            ask=inst.round_price(tick.ask, Rounding.UP),
        )

    def more_quotes(self, venue: str, tick: QuoteTicked) -> list[QuoteTicked]:
        """The further pairs' quotes on ``venue`` at ``tick`` (the market's own tick, the
        first pair's on venue a)."""
        out = []
        for inst, scale in self.others.get(venue, ()):
            bid, ask = CTX.multiply(tick.bid, scale), CTX.multiply(tick.ask, scale)
            out.append(
                QuoteTicked(
                    ts=tick.ts,
                    venue=inst.venue,
                    symbol=inst.symbol,
                    bid=inst.round_price(bid, Rounding.DOWN),
                    ask=inst.round_price(ask, Rounding.UP),
                )
            )
        return out


class PairVenue(SimVenue):
    """A venue of the pair: each market tick also brings the further pairs' quotes (see
    :meth:`PairMarket.more_quotes`), matched one after the other at the tick's time."""

    async def _on_tick(self, index: int, tick: QuoteTicked) -> None:
        await super()._on_tick(index, tick)
        market = self._market
        if not isinstance(market, PairMarket) or not market.others.get(self.name):
            return
        # Scaled from the market's own tick (not from venue b's, rounded to b's tick).
        for quote in market.more_quotes(self.name, market.raw or tick):
            await super()._on_tick(index, quote)

"""The simulated venue passes the public adapter conformance suite.

Its fake venue is the exchange model itself; the controls force the next command's fate, a feed
outage or an unreadable quote. Simulated time (lockstep clock): nothing depends on the
machine's speed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from gridcore.commands import PlaceOrder
from gridcore.config import load_config
from gridcore.events import QuoteTicked
from gridcore.instruments import PositionSide, Side
from gridcore.shells.conformance import AdapterConformance, VenueUnderTest
from gridcore.shells.runtime import LockstepClock
from gridcore.shells.simvenue import SimVenue, VenueStore, open_venue_state
from gridcore.sim.faults import Fate

CONFIG = load_config()


class _SimControl:
    """The conformance suite's remote control, on the simulated venue's test hooks."""

    def __init__(self, venue: SimVenue) -> None:
        self.venue = venue

    def reject_next(self) -> None:
        self.venue.force_fate(Fate.REST_ERROR)

    def lose_next_answer(self, *, applied: bool) -> None:
        self.venue.force_fate(Fate.TIMEOUT_APPLIED if applied else Fate.TIMEOUT_LOST)

    def disconnect_feed(self) -> None:
        self.venue.force_disconnect(5 * CONFIG.market.interval_ms)

    def send_malformed(self) -> None:
        self.venue.force_malformed()


class TestSimVenueConformance(AdapterConformance):
    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def venue(self, tmp_path: Path) -> Iterator[VenueUnderTest]:
        store = VenueStore(tmp_path / "conformance.venue")
        state, _ = open_venue_state(store, CONFIG, seed=None, faults="none")
        clock = LockstepClock(CONFIG.market.start_ts)
        sim = SimVenue(config=CONFIG, state=state, store=store, clock=clock)
        yield VenueUnderTest(adapter=sim, control=_SimControl(sim), clock=clock)
        sim.close()

    def make_place(
        self, quote: QuoteTicked, *, command_id: int, cloid: str, side: Side, cross: bool
    ) -> PlaceOrder:
        tick = CONFIG.instrument.tick_size
        if side is Side.BUY:
            price = quote.ask if cross else quote.bid - 100 * tick
        else:
            price = quote.bid if cross else quote.ask + 100 * tick
        return PlaceOrder(
            command_id=command_id,
            venue=CONFIG.venue.name,
            symbol=quote.symbol,
            cloid=cloid,
            side=side,
            position_side=PositionSide.BOTH,
            qty=Decimal("0.001"),
            price=price,
        )


def test_the_suite_stays_out_of_the_bot() -> None:
    """The conformance suite needs pytest; neither the core nor the shells that run a bot load
    it (or pytest)."""
    code = (
        "import sys, gridcore, gridcore.shells.runtime, gridcore.shells.simvenue, "
        "gridcore.shells.cli; "
        "print(sorted(m for m in sys.modules if m == 'pytest' or m.endswith('conformance')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"

"""Prove your own bot: a small strategy, then its proof with gridcore's harness.

``docs/prove-your-bot.md`` walks through this file. Run it with ``python -m pytest
examples/prove_my_bot.py``; ``--hypothesis-profile=gridcore-thorough`` searches much longer.

The strategy buys a little under the market and sells it back a little above its entry price,
one cycle at a time. The proof runs it against gridcore's simulated venue under drawn markets
and faults (lost, duplicated and late messages, failing and timed-out requests, disconnects)
and checks every invariant of the catalogue after every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Self

import attrs

from gridcore import (
    Cancel,
    CoreConfig,
    Event,
    Instrument,
    Intent,
    OrderChange,
    QuoteTicked,
    RiskConfig,
    Rounding,
    Side,
    State,
    Submit,
    initial_state,
)

INSTRUMENT = Instrument(
    venue="sim",
    symbol="BTC-PERP",
    tick_size=Decimal("1"),
    lot_size=Decimal("0.001"),
    min_notional=Decimal(10),
    maker_fee=Decimal("0.0002"),
    taker_fee=Decimal("0.0005"),
)
SIZE = Decimal("0.002")  # base units per cycle


@attrs.frozen(kw_only=True)
class DipBuyer:
    """Buys SIZE 0.2 % under the mid; sells the position 0.1 % above its entry (reduce-only).

    Tags follow the harness's take-profit convention (``dip:entry:<n>``, ``dip:tp:<n>``), so
    the catalogue also checks that no entry of a closed cycle is left open.
    """

    cycle: int = 0

    def on_tick(self, view: State[Self], tick: QuoteTicked) -> tuple[Self, Sequence[Intent]] | None:
        new, intents = self.decide(view)
        return (new, intents) if intents else None

    def on_changes(
        self, view: State[Self], changes: Sequence[OrderChange]
    ) -> tuple[Self, Sequence[Intent]]:
        return self.decide(view)

    def on_ready(self, view: State[Self], venue: str) -> tuple[Self, Sequence[Intent]]:
        return self.decide(view)

    def on_timer(self, view: State[Self], timer_id: str) -> tuple[Self, Sequence[Intent]]:
        return self.decide(view)

    def on_event(self, view: State[Self], event: Event) -> tuple[Self, Sequence[Intent]]:
        return self, ()

    def order_band(self, view: State[Self]) -> Decimal:  # entries rest within 1.5 % of the mid
        return Decimal("0.015")

    def decide(self, view: State[Self]) -> tuple[Self, Sequence[Intent]]:
        mid = view.mid(INSTRUMENT.venue, INSTRUMENT.symbol)
        if mid is None or not view.can_trade(INSTRUMENT.venue):
            return self, ()
        live = view.live_orders("dip:")
        position = view.ledger.position(INSTRUMENT.venue, INSTRUMENT.symbol)
        if position.qty > 0 and not live:  # close exactly what we hold, in base units
            target = INSTRUMENT.round_price(position.avg_entry * Decimal("1.001"), Rounding.UP)
            price = max(target, INSTRUMENT.round_price(mid, Rounding.UP))
            tp = Submit(venue=INSTRUMENT.venue, symbol=INSTRUMENT.symbol, side=Side.SELL,
                        qty=position.qty, price=price, reduce_only=True, tag=f"dip:tp:{self.cycle}")  # fmt: skip
            return self, [tp]
        if position.qty == 0 and not live:  # flat: the next cycle's entry
            price = INSTRUMENT.round_price(mid * Decimal("0.998"), Rounding.DOWN)
            entry = Submit(venue=INSTRUMENT.venue, symbol=INSTRUMENT.symbol, side=Side.BUY,
                           qty=SIZE, price=price, tag=f"dip:entry:{self.cycle + 1}")  # fmt: skip
            return attrs.evolve(self, cycle=self.cycle + 1), [entry]
        # Entries the market left behind are withdrawn (and placed again at the new mid); the
        # take-profit stays where the entry put it: re-placing it at the same price would
        # cancel and re-send it on every quote.
        stale = [
            o for o in live if ":entry:" in o.tag and abs(o.price - mid) > mid * Decimal("0.01")
        ]
        return self, [Cancel(cloid=o.cloid) for o in stale]


# --- the proof ---------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gridcore.testing import (  # noqa: E402
    Scenario,
    assert_no_violations,
    make_state_machine,
    simulate,
)
from gridcore.testing import strategies as gst  # noqa: E402


def my_bot() -> State[DipBuyer]:
    config = CoreConfig(instruments=(INSTRUMENT,), risk=RiskConfig(leverage=Decimal(10)))
    return initial_state(config, DipBuyer(), epoch=1_700_000_000_000)


@settings(deadline=None)  # a run's duration depends on the market drawn, not on a bug
@given(gst.scenarios(market=gst.market_paths(instrument=st.just(INSTRUMENT), max_ticks=600)))
def test_dip_buyer_keeps_every_invariant(scenario: Scenario) -> None:
    """Any market, any faults: every invariant holds after every step, and after settling the
    bot's books equal the venue's."""
    assert_no_violations(simulate(my_bot(), scenario))


# Step by step: ticks, time, messages in any order, lost, repeated; failures; disconnects.
TestDipBuyerMachine = make_state_machine(initial_state=my_bot()).TestCase

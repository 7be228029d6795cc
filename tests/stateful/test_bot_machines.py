"""The real bots against the exchange model, driven by the shipped state machine.

Every rule of :func:`gridcore.testing.make_state_machine` is in play: ticks, time passing,
messages delivered in any order, lost, duplicated, requests failing or timing out (carried out
by the venue or not), the feed going down and coming back, and settling, after which the bot
must agree with the venue. The whole invariant catalogue is checked after every step.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gridcore.testing import make_state_machine
from tests.harness.bots import grid_bot, take_profit_bot

NeutralGridMachine = make_state_machine(initial_state=grid_bot(), name="NeutralGridMachine")
TestNeutralGrid = NeutralGridMachine.TestCase

TakeProfitMachine = make_state_machine(initial_state=take_profit_bot(), name="TakeProfitMachine")
TestTakeProfit = TakeProfitMachine.TestCase


def test_a_fill_reported_for_an_order_missing_from_the_venue_leaves_it_in_doubt() -> None:
    """Failure `fill-revives-missing-order`, as the machine found it: the grid re-centred, the
    bot restarted with its cancels applied at the venue, restarted again, and a fills request
    failed. In reconciliation the old sells were missing from the venue's open orders, then a
    fills report brought their partial fills from before the cancel: they must stay in doubt
    (not rest again below the grid's new buys) until their status answers."""
    machine: Any = NeutralGridMachine()
    machine.start(
        liquidity=[Decimal("0.001")],
        funding_interval_ms=10_000,
        opening=[0],
        answers_first=False,
        last_lot_later=False,
    )
    machine.refuse(rejected=False)
    machine.tick(move=154)
    machine.restart(applied=True)
    machine.restart(applied=False)
    machine.fail()
    machine.teardown()
    assert machine.violations == []


def test_a_reconnect_applies_before_the_housekeeping_due_at_its_time() -> None:
    """Failure `quote-from-before-a-gap`, as the machine found it: a reconnect arrived when
    housekeeping was due. Housekeeping ran first and the take-profit bot's heartbeat placed
    orders priced from the quote that the reconnect then said was from before the gap."""
    machine: Any = TakeProfitMachine()
    machine.start(
        liquidity=[Decimal("0.009")],
        answers_first=True,
        opening=[0, 0, -54, 73, 79, 90, -450],
        last_lot_later=False,
        funding_interval_ms=10_000,
    )
    for rule, kwargs in [
        ("tick", {"move": -68}),
        ("settle", {}),
        ("settle", {}),
        ("settle", {}),
        ("tick", {"move": -28}),
        ("deliver_all", {}),
        ("settle", {}),
        ("tick", {"move": -27}),
        ("tick", {"move": -44}),
        ("settle", {}),
        ("tick", {"move": 0}),
        ("tick", {"move": 88}),
        ("deliver_all", {}),
        ("stall", {"ms": 1_000}),
        ("settle", {}),
    ]:
        getattr(machine, rule)(**kwargs)
    machine.teardown()
    assert machine.violations == []

"""The real bots against the exchange model, driven by the shipped state machine.

Every rule of :func:`gridcore.testing.make_state_machine` is in play: ticks, time passing,
messages delivered in any order, lost, duplicated, requests failing or timing out (carried out
by the venue or not), the feed going down and coming back, and settling, after which the bot
must agree with the venue. The whole invariant catalogue is checked after every step.
"""

from __future__ import annotations

from gridcore.testing import make_state_machine
from tests.harness.bots import grid_bot, take_profit_bot

NeutralGridMachine = make_state_machine(initial_state=grid_bot(), name="NeutralGridMachine")
TestNeutralGrid = NeutralGridMachine.TestCase

TakeProfitMachine = make_state_machine(initial_state=take_profit_bot(), name="TakeProfitMachine")
TestTakeProfit = TakeProfitMachine.TestCase

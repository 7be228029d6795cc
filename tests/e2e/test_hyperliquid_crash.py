"""The live Hyperliquid path killed over and over over the real wire, and its dead-man switch.

The Hyperliquid fake runs in this process on a real loopback port (so the test can read what
it received); the real ``gridcore run --venue hyperliquid --live --testnet --venue-url ...``
(key from the environment) runs as a subprocess with a journal and is SIGKILLed at points
chosen by watching the journal (after a drawn number of new events, with at least one new fill
at the venue since the run started), never by the clock, then restarted on the same journal.
The market is lively, so orders are placed and filled between kills, and fills also happen
while no bot runs. Afterwards (failures `no-crash-recovery`, `double-counted-fill`,
`missed-fills-on-reconnect`, `nonce-reuse-after-restart`):

* the journal's ledger equals the venue's truth for the account: the same fills by venue fill
  id, the same position, the same fees;
* no cloid ever reached the venue twice in a new order;
* the venue refused no nonce, every nonce it received is distinct, and each run's nonces are
  all above every earlier run's.

``GRIDCORE_CRASH_KILLS`` (default 5) sets the number of kills; ``nox -s crash`` runs many more.
The dead-man switch test kills a bot that armed it, steps the fake's clock past the window and
finds the orders canceled by the venue and the trigger counted (failure
`orders-outlive-the-bot`).
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from gridcore import OrderStatus, ReportedStatus
from gridcore.core import State
from gridcore.events import FillsReported, OrderFilled, OrderPartiallyFilled
from gridcore.shells.cli_run import replay_journal
from gridcore.shells.journal import Journal, is_new, recover
from gridcore.shells.venues.hyperliquid.fake import CoinSpec, HyperliquidFake
from gridcore.shells.venues.hyperliquid.nonces import nonce_path
from gridcore.shells.venues.hyperliquid.signing import address_of

KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"  # SDK test key
ADDRESS = address_of(KEY)
KILLS = int(os.environ.get("GRIDCORE_CRASH_KILLS", "5"))
MAX_ADVANCE = 120  # events a run journals before it is killed: drawn from 10 to this
HANG_S = 180.0  # a safety net against hangs only: no assertion depends on how fast runs are
SEED = 20_261_130
VENUE = "hyperliquid"

CONFIG = """\
[venue]
name = "hyperliquid"
leverage = "10"
{dead_man}
[instrument]
symbol = "ETH"
tick_size = "0.1"
lot_size = "0.0001"
min_notional = "10"
maker_fee = "0.00015"
taker_fee = "0.00045"
base = "ETH"
quote = "USDC"

[grid]
levels = 3
spacing = "0.0005"
order_qty = "0.01"
max_inventory = "0.1"

[risk]
max_position = "0.2"
max_order_notional = "1000"
max_drawdown = "5000"
"""


class _Clock:
    """The fake's clock: the wall clock plus an offset the test steps."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def fake(clock: _Clock) -> Iterator[HyperliquidFake]:
    # A lively market: a quote every 50 ms, steps of a few grid spacings.
    with HyperliquidFake(
        account=ADDRESS,
        coins=(CoinSpec("ETH", 4, Decimal(3200)),),
        tick_ms=50,
        volatility=Decimal("0.0015"),
        seed=SEED,
        now_ms=clock,
        record=True,
    ) as running:
        yield running


def _start(
    fake: HyperliquidFake, journal: Path, config: Path, *extra: str
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCORE_HL_")}
    env["GRIDCORE_HL_PRIVATE_KEY"] = KEY
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridcore.shells.cli",
            "run",
            "--venue",
            "hyperliquid",
            "--live",
            "--testnet",
            "--venue-url",
            fake.url,
            "--journal",
            str(journal),
            "--config",
            str(config),
            "-q",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait(what: str, proc: subprocess.Popen[str], done: Callable[[], bool]) -> None:
    """Poll ``done`` until it holds; the bound is against hangs, not a speed expectation."""
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"gridcore run ended (exit {proc.returncode}) before {what}: {err}")
        if done():
            return
        time.sleep(0.02)
    pytest.fail(f"no {what} within {HANG_S} s (hung?)")


def _seq(path: Path) -> int:
    if not path.exists() or is_new(path):
        return 0
    with Journal.open(path, readonly=True) as journal:
        return journal.last_seq


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == -signal.SIGKILL, err


def _venue_fill_ids(fake: HyperliquidFake) -> set[str]:
    return {f"{f.venue_order_id}:{f.fill_id.rsplit('f', 1)[1]}" for f in fake.exchange.fills}


def _journal_state(path: Path) -> tuple[State[Any], set[str]]:
    with Journal.open(path, readonly=True) as journal:
        state, _ = recover(journal)
        fill_ids: set[str] = set()
        for _, event in journal.events():
            if isinstance(event, OrderFilled | OrderPartiallyFilled):
                fill_ids.add(event.fill.fill_id)
            elif isinstance(event, FillsReported):
                fill_ids.update(f.fill_id for f in event.fills)
    return state, fill_ids


def _progressed(path: Path, fake: HyperliquidFake, target: int, fills_before: int) -> bool:
    return _seq(path) >= target and len(fake.exchange.fills) > fills_before


def _mark(directory: Path) -> int:
    data = json.loads(nonce_path(directory, ADDRESS).read_text())
    return int(data["last"])


def _settled(path: Path, fake: HyperliquidFake) -> bool:
    state, _ = _journal_state(path)
    return (
        state.ledger.fill_count == len(fake.exchange.fills)
        and state.ledger.position(VENUE, "ETH").qty == fake.exchange.position("ETH").qty
    )


def test_sigkill_over_the_real_wire_loses_no_fill_and_reuses_no_cloid_or_nonce(
    fake: HyperliquidFake, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "j.db"
    config = tmp_path / "eth.toml"
    config.write_text(CONFIG.format(dead_man=""))
    marks: list[int] = []  # the durable nonce mark after each kill
    last_seq = 0
    for _ in range(KILLS):
        fills_before = len(fake.exchange.fills)
        proc = _start(fake, path, config)
        target = last_seq + rng.randint(10, MAX_ADVANCE)
        _wait(
            f"event {target} and a new fill",
            proc,
            partial(_progressed, path, fake, target, fills_before),
        )
        _kill(proc)
        # Durable before use: the mark left by a killed run covers every nonce the venue has
        # received from it (whatever is still on its way was issued under the mark as well).
        marks.append(_mark(tmp_path))
        assert max(r.nonce for r in fake.received) <= marks[-1]
        last_seq = _seq(path)
        assert last_seq >= target, "what a reader saw committed survives the kill"
    # The market stands still; a last run settles (reconciles what happened while no bot ran)
    # and is stopped cleanly once its ledger holds every fill the venue made. With no quote
    # since its start it places nothing (the last quote its journal holds was seen before the
    # gap: failure `quote-from-before-a-gap`), so nothing it does can fill after that.
    fake.freeze_market(True)
    final = _start(fake, path, config)
    _wait("a settled ledger", final, lambda: _seq(path) > last_seq and _settled(path, fake))
    final.send_signal(signal.SIGINT)
    out, err = final.communicate(timeout=HANG_S)
    assert final.returncode == 0, err
    assert "stopped" in out

    with Journal.open(path, readonly=True) as journal:
        replayed = replay_journal(journal)
        assert replayed.mismatch_seq is None, replayed.diff
        assert journal.duplicate_cloids() == []
        placed = journal.placed_cloids()
        assert len(placed) == len(set(placed))
        starts = sum(type(e).__name__ == "Started" for _, e in journal.events())
    assert starts == KILLS + 1
    state, fill_ids = _journal_state(path)
    # No fill lost, none doubled: the ledger holds exactly the venue's fills, position and fees.
    venue_ids = _venue_fill_ids(fake)
    assert len(venue_ids) >= KILLS, "the bot traded between kills"
    assert fill_ids == venue_ids
    assert state.ledger.fill_count == len(venue_ids)
    position = state.ledger.position(VENUE, "ETH")
    assert position.qty == fake.exchange.position("ETH").qty
    assert position.fees == sum((f.fee for f in fake.exchange.fills), Decimal(0))
    # No cloid ever reached the venue twice in a new order.
    sent = collections.Counter(c for r in fake.received for c in r.new_cloids)
    assert sent, "orders were placed"
    assert {c: n for c, n in sent.items() if n > 1} == {}
    # No nonce reused: none refused, all distinct, and each run's above every earlier run's.
    assert [r.refusal for r in fake.received if r.refusal and "nonce" in r.refusal] == []
    nonces = [r.nonce for r in fake.received]
    assert len(nonces) == len(set(nonces))
    assert {r.signer for r in fake.received} == {ADDRESS.lower()}
    marks.append(_mark(tmp_path))
    assert max(nonces) <= marks[-1]
    # A run issues nonces above the mark it started from (the allocator loads it), and its own
    # mark covers them: the runs' nonces are disjoint, increasing intervals. (A run may leave
    # its interval empty at the venue: a request signed just before the kill never arrives.)
    assert marks == sorted(marks)
    assert any(n > marks[0] for n in nonces), "the restarted runs signed, and were accepted"


def _at_rest_with_orders(path: Path, fake: HyperliquidFake) -> bool:
    """The bot armed the switch, has orders resting and nothing in flight: every order live in
    its journal is confirmed open, and those are exactly the venue's open orders. In a held
    market it stays so (nothing fills, no grid recenters), so a kill or a stop from here finds
    the book as the test saw it; in a moving market the bot may at any moment be between a
    recenter's cancels and its new orders."""
    resting = fake.open_cloids()
    if fake.scheduled_cancel is None or not resting or _seq(path) == 0:
        return False
    state, _ = _journal_state(path)
    live = [state.orders[cloid] for cloid in state.live]
    return {o.cloid for o in live} == resting and all(o.status is OrderStatus.OPEN for o in live)


# slow: the default run keeps the kills over the real wire above.
@pytest.mark.slow
def test_the_dead_man_switch_cancels_a_killed_bots_orders_and_a_clean_stop_clears_it(
    fake: HyperliquidFake, clock: _Clock, tmp_path: Path
) -> None:
    config = tmp_path / "eth.toml"
    config.write_text(CONFIG.format(dead_man="dead_man_seconds = 300"))
    path = tmp_path / "j.db"
    # The price holds (quotes keep coming, fresh): no fill, no recenter, no reprice, so the bot
    # never cancels what it placed and the switch is what cancels it.
    fake.hold_market(True)
    proc = _start(fake, path, config)
    _wait("the switch armed and the grid at rest", proc, partial(_at_rest_with_orders, path, fake))
    _kill(proc)
    due = fake.scheduled_cancel
    assert due is not None
    resting = fake.open_cloids()
    assert resting, "the dead bot left orders on the book"
    # The venue's clock passes the window: the switch fires, every order is canceled, and the
    # fire counts against the day's budget.
    clock.offset += due - clock() + 1
    fake.fire_due_schedule()  # the market loop may have fired it already: same outcome
    assert fake.open_cloids() == frozenset()
    assert all(fake.exchange.orders[c].status is ReportedStatus.CANCELED for c in resting)
    assert sum(fake.schedule_triggers.values()) == 1
    assert fake.scheduled_cancel is None
    arms = [r for r in fake.received if r.kind == "scheduleCancel"]
    assert arms and all(r.refusal is None for r in arms)
    clock.offset = 0  # back to the bot's time, so that its next arming is ahead of the venue's

    # A clean stop clears the switch: the orders it leaves resting stay the operator's call.
    again = _start(fake, path, config)
    _wait(
        "the switch armed again and the grid at rest",
        again,
        partial(_at_rest_with_orders, path, fake),
    )
    again.send_signal(signal.SIGINT)
    _, err = again.communicate(timeout=HANG_S)
    assert again.returncode == 0, err
    assert fake.scheduled_cancel is None
    assert fake.open_cloids(), "without --cancel-on-exit the orders rest"
    assert fake.received[-1].kind == "scheduleCancel" and fake.received[-1].refusal is None
    assert sum(fake.schedule_triggers.values()) == 1, "clearing is not a trigger"


# slow: the default run keeps the paper bot's second signal.
@pytest.mark.slow
def test_a_second_signal_during_shutdown_exits_130_and_still_clears_the_switch(
    fake: HyperliquidFake, tmp_path: Path
) -> None:
    """Ctrl-C starts a stop that cancels every order (``--cancel-on-exit``) and waits for the
    answers; the venue loses the cancel's answer, so the stop is still waiting when a second
    Ctrl-C ends the wait, and a barrage follows until the process is gone. The run reports a
    stop cut short (exit 130, its summary, never a traceback), its journal ends on its final
    snapshot, and the dead-man switch it armed is cleared, as on any clean stop."""
    config = tmp_path / "eth.toml"
    config.write_text(CONFIG.format(dead_man="dead_man_seconds = 300"))
    path = tmp_path / "j.db"
    # The price holds: once the grid is at rest nothing new is sent, so the next action is the
    # stop's cancel.
    fake.hold_market(True)
    proc = _start(fake, path, config, "--cancel-on-exit")
    _wait("the switch armed and the grid at rest", proc, partial(_at_rest_with_orders, path, fake))
    sent = len(fake.received)
    fake.lose_next_answer(applied=True)
    proc.send_signal(signal.SIGINT)
    _wait(
        "the stop's cancel at the venue",
        proc,
        lambda: any(r.kind.startswith("cancel") for r in fake.received[sent:]),
    )
    barrage = 0
    while proc.poll() is None and barrage < 10_000:
        proc.send_signal(signal.SIGINT)
        barrage += 1
        time.sleep(0.001)  # pacing only; the assertions do not depend on it
    out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted during shutdown" in err
    assert "stopped (signal SIGINT)" in out
    assert fake.scheduled_cancel is None, "the stop left the dead-man switch armed"
    with Journal.open(path, readonly=True) as journal:
        assert journal.last_snapshot_seq == journal.last_seq > 0
        assert replay_journal(journal).mismatch_seq is None

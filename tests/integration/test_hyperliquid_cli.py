"""``gridcore run --venue hyperliquid-fake`` (the whole stack against an in-process fake, over
loopback sockets), the refusals of ``--venue hyperliquid`` and ``gridcore fake-venue
hyperliquid``, as real subprocesses of the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hyperliquid.info import Info

TIMEOUT = 120
KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCORE_HL_")}
    return subprocess.run(
        [sys.executable, "-m", "gridcore.shells.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**clean, "COLUMNS": "200", **(env or {})},
    )


def test_the_demo_runs_the_whole_stack_and_resumes(tmp_path: Path) -> None:
    first = cli(
        "run", "--venue", "hyperliquid-fake", "--journal", "j.db", "--duration", "6", cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    assert "new journal j.db (--venue hyperliquid-fake)" in first.stderr
    assert "stopped (duration reached)" in first.stdout
    assert list(tmp_path.glob("hyperliquid-nonce-*.json")), (
        "the nonce mark lives beside the journal"
    )
    report = cli("inspect", "j.db", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert "hyperliquid" in data["venues"]
    assert data["invariants"]["ok"] is True, data["invariants"]
    assert data["commands"] > 0, "the bot placed orders on the fake"
    again = cli(
        "run", "--venue", "hyperliquid-fake", "--journal", "j.db", "--duration", "3", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert "resuming journal j.db" in again.stderr
    wrong = cli(
        "run",
        "--journal",
        "j.db",
        "--duration",
        "1",
        "--venue",
        "hyperliquid",
        "--live",
        "--testnet",
        cwd=tmp_path,
        env={"GRIDCORE_HL_PRIVATE_KEY": KEY},
    )
    assert wrong.returncode == 2 and "was started on --venue hyperliquid-fake" in wrong.stderr


def test_a_configuration_the_venue_would_refuse_stops_before_the_journal(tmp_path: Path) -> None:
    (tmp_path / "fine.toml").write_text(
        '[venue]\nname = "hyperliquid"\n[instrument]\nsymbol = "ETH"\ntick_size = "0.001"\n'
        'lot_size = "0.001"\nmin_notional = "10"\n[grid]\norder_qty = "0.01"\n'
        '[market]\nstart_price = "3200"\n'
    )
    refused = cli(
        "run",
        "--venue",
        "hyperliquid-fake",
        "--journal",
        "j.db",
        "--config",
        "fine.toml",
        cwd=tmp_path,
    )
    assert refused.returncode == 2, refused.stderr
    assert "tick_size 0.001 is finer than the venue accepts" in refused.stderr
    assert "set tick_size to a multiple of 0.1" in refused.stderr
    assert not (tmp_path / "j.db").exists()


def test_live_needs_live_a_key_from_the_environment_and_mainnet_confirmation(
    tmp_path: Path,
) -> None:
    no_live = cli("run", "--venue", "hyperliquid", "--journal", "j.db", cwd=tmp_path)
    assert no_live.returncode == 2 and "add --live" in no_live.stderr
    mainnet = cli(
        "run",
        "--venue",
        "hyperliquid",
        "--live",
        "--journal",
        "j.db",
        cwd=tmp_path,
        env={"GRIDCORE_HL_PRIVATE_KEY": KEY},
    )
    assert mainnet.returncode == 2 and "--confirm-mainnet" in mainnet.stderr
    no_key = cli(
        "run", "--venue", "hyperliquid", "--live", "--testnet", "--journal", "j.db", cwd=tmp_path
    )
    assert no_key.returncode == 2 and "GRIDCORE_HL_PRIVATE_KEY" in no_key.stderr
    for result in (no_live, mainnet, no_key):
        assert KEY[2:] not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "j.db").exists(), "a refused run creates nothing"


def test_fake_venue_serves_standalone(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridcore.shells.cli",
            "fake-venue",
            "hyperliquid",
            "--port",
            "0",
            "--balance",
            "5000",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), line
        url = line.split()[1]
        info = Info(url, skip_ws=True)
        assert [a["name"] for a in info.meta()["universe"]] == ["BTC", "ETH"]
        sdk_account = "0x14791697260E4c9A71f18484C9f997B308e59325"
        state = info.user_state(sdk_account)
        assert state["marginSummary"]["accountValue"] == "5000"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=TIMEOUT)
    assert server.returncode == 0


def test_fake_venue_and_demo_refusals_name_the_argument(tmp_path: Path) -> None:
    for args, text in (
        (("fake-venue", "hyperliquid", "--balance", "lots"), "--balance"),
        (("fake-venue", "hyperliquid", "--account", "me"), "--account"),
        (("fake-venue", "hyperliquid", "--port", "70000"), "--port"),
        (("run", "--venue", "hyperliquid-fake", "--live", "--journal", "j.db"), "drop --live"),
        (
            ("run", "--venue", "hyperliquid-fake", "--faults", "flaky", "--journal", "j.db"),
            "--faults",
        ),
        (("run", "--venue", "hyperliquid-fake", "--journal", "nowhere/j.db"), "does not exist"),
    ):
        result = cli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert text in result.stderr and "Traceback" not in result.stderr, result.stderr
    (tmp_path / "sim.toml").write_text('[venue]\nname = "sim"\n')
    wrong = cli(
        "run",
        "--venue",
        "hyperliquid-fake",
        "--journal",
        "j.db",
        "--config",
        "sim.toml",
        cwd=tmp_path,
    )
    assert wrong.returncode == 2 and 'it must be "hyperliquid"' in wrong.stderr
    assert not (tmp_path / "j.db").exists()


# slow: the default run keeps the demo's whole stack.
@pytest.mark.slow
def test_a_live_run_against_a_standalone_fake(tmp_path: Path) -> None:
    """The live path end to end (key from the environment, durable nonces, testnet signing)
    against ``gridcore fake-venue`` instead of the network; an unreachable venue or a signer
    already in use is refused before anything is written."""
    from gridcore.shells.venues.hyperliquid.nonces import NonceAllocator, nonce_path
    from gridcore.shells.venues.hyperliquid.signing import address_of

    account = address_of(KEY)
    env = {"GRIDCORE_HL_PRIVATE_KEY": KEY}
    (tmp_path / "eth.toml").write_text(
        '[venue]\nname = "hyperliquid"\n[instrument]\nsymbol = "ETH"\ntick_size = "0.1"\n'
        'lot_size = "0.0001"\nmin_notional = "10"\n[grid]\norder_qty = "0.01"\nlevels = 2\n'
    )
    unreachable = cli(
        "run",
        "--venue",
        "hyperliquid",
        "--live",
        "--testnet",
        "--venue-url",
        "http://127.0.0.1:9",
        "--journal",
        "j.db",
        "--config",
        "eth.toml",
        cwd=tmp_path,
        env=env,
    )
    assert unreachable.returncode == 2 and "cannot reach the venue" in unreachable.stderr
    assert not (tmp_path / "j.db").exists()
    server = subprocess.Popen(
        [sys.executable, "-m", "gridcore.shells.cli", "fake-venue", "hyperliquid", "--account", account],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[1]
        held = NonceAllocator(signer=account, now_ms=lambda: 1, path=nonce_path(tmp_path, account))
        busy = cli(
            "run",
            "--venue",
            "hyperliquid",
            "--live",
            "--testnet",
            "--venue-url",
            url,
            "--journal",
            "j.db",
            "--config",
            "eth.toml",
            cwd=tmp_path,
            env=env,
        )
        assert busy.returncode == 2 and "in use by another allocator" in busy.stderr
        held.close()
        live = cli(
            "run",
            "--venue",
            "hyperliquid",
            "--live",
            "--testnet",
            "--venue-url",
            url,
            "--journal",
            "j.db",
            "--config",
            "eth.toml",
            "--duration",
            "4",
            cwd=tmp_path,
            env=env,
        )
        assert live.returncode == 0, live.stderr
        assert "stopped (duration reached)" in live.stdout
        assert KEY[2:] not in live.stdout + live.stderr
        for written in tmp_path.iterdir():  # journal, its companions, the nonce mark
            if written.is_file():
                assert KEY[2:].encode() not in written.read_bytes(), written
        report = json.loads(cli("inspect", "j.db", "--json", cwd=tmp_path).stdout)
        assert report["invariants"]["ok"] is True and report["commands"] > 0
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=TIMEOUT)

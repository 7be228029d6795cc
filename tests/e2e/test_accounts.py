"""Several accounts in one ``gridcore run``: the real CLI in subprocesses.

Three accounts share one simulated market; one of them is fed faults (the chaos profile, or an
adapter bug in its venue). The others trade to the end, every journal replays to its state, a
SIGINT stops every account with a final snapshot, and after a SIGKILL each account resumes
from its own journal. No assertion depends on the machine's speed: waits poll the journals
read-only, bounded by a generous safety net.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gridcore.config import DEFAULT_TOML
from gridcore.shells.journal import Journal, is_new
from gridcore.shells.simvenue import describe, saved_venue

HANG = 180.0  # a safety net against hangs only
NAMES = ("alice", "bob", "carol")

_ACCOUNTS = """

[[accounts]]
name = "alice"

[[accounts]]
name = "bob"
faults = "{bob_faults}"

[[accounts]]
name = "carol"
"""

_BUGGY_CAROL = """
import sys
from gridcore.shells import simvenue

_on_tick = simvenue.SimVenue._on_tick

async def on_tick(self, index, tick):
    if "carol" in str(self._store.path) and index >= 600:
        raise KeyError("book")  # an adapter bug in carol's venue only
    await _on_tick(self, index, tick)

simvenue.SimVenue._on_tick = on_tick
from gridcore.shells.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run(*args: str, cwd: Path, code: str | None = None) -> subprocess.CompletedProcess[str]:
    head = ["-c", code] if code is not None else ["-m", "gridcore.shells.cli"]
    return subprocess.run(
        [sys.executable, *head, *args], cwd=cwd, capture_output=True, text=True, timeout=HANG
    )


def _setup(tmp_path: Path, *, bob_faults: str = "chaos", extra: str = "") -> Path:
    (tmp_path / "runs").mkdir()
    config = tmp_path / "bots.toml"
    config.write_text(DEFAULT_TOML + _ACCOUNTS.format(bob_faults=bob_faults) + extra)
    return config


def _inspect(tmp_path: Path) -> dict[str, dict[str, object]]:
    result = _run("inspect", "runs", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    return {entry["account"]: entry for entry in doc["accounts"]}


def _replays(tmp_path: Path, name: str) -> None:
    replay = _run("replay", f"runs/{name}.db", cwd=tmp_path)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "deterministic" in replay.stdout


def test_three_accounts_one_with_chaos_all_exact(tmp_path: Path) -> None:
    _setup(tmp_path)
    args = ("run", "--config", "bots.toml", "--journal-dir", "runs", "--speed", "max")
    logged = ("--log-file", "log.jsonl", "--log-json")
    run = _run(*args, "--duration", "7200", *logged, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    for name in NAMES:
        assert f"account {name}: stopped (duration reached)" in run.stdout
    reports = _inspect(tmp_path)
    # Every log line of an account's tasks names it; its fills are its journal's.
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    fills = [line for line in lines if line["logger"] == "gridcore.fills"]
    for name in NAMES:
        mine = [line for line in fills if line.get("account") == name]
        assert len(mine) == reports[name]["fills"]
        assert all(line["message"].startswith(f"account {name}: ") for line in mine)
    assert sorted(reports) == list(NAMES)
    for name in NAMES:
        report = reports[name]
        assert report["invariants"] == {"ok": True, "violations": []}
        assert report["duplicate_cloids"] == []
        _replays(tmp_path, name)
    # The same configuration on the same market: the healthy two traded alike, whatever the
    # chaos did to bob's connection.
    alice, carol = reports["alice"], reports["carol"]
    assert isinstance(alice["fills"], int) and alice["fills"] > 0
    assert alice["fills"] == carol["fills"]
    assert alice["pnl"] == carol["pnl"]
    assert alice["events"] == carol["events"]
    # Running the same command again resumes each account from its own journal.
    again = _run(*args, "--duration", "600", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    for name in NAMES:
        assert f"account {name}: resuming journal runs/{name}.db" in again.stderr
    resumed = _inspect(tmp_path)
    for name in NAMES:
        assert resumed[name]["last_seq"] > reports[name]["last_seq"]  # type: ignore[operator]


def test_an_adapter_bug_stops_its_account_alone(tmp_path: Path) -> None:
    _setup(tmp_path, bob_faults="none")
    run = _run(
        "run", "--config", "bots.toml", "--journal-dir", "runs", "--speed", "max",
        "--duration", "3600", cwd=tmp_path, code=_BUGGY_CAROL,
    )  # fmt: skip
    assert run.returncode == 70, run.stdout + run.stderr
    assert "KeyError" in run.stderr and "gridcore: error: account carol:" in run.stderr
    assert "account alice: stopped (duration reached)" in run.stdout
    assert "account bob: stopped (duration reached)" in run.stdout
    assert "accounts: alice 0, bob 0, carol 70; exit 70" in run.stdout
    reports = _inspect(tmp_path)
    assert reports["carol"]["now"] < reports["alice"]["now"]  # type: ignore[operator]
    for name in NAMES:
        _replays(tmp_path, name)
    # Fixed, carol resumes from her journal; the others go on from theirs.
    again = _run(
        "run", "--config", "bots.toml", "--journal-dir", "runs", "--speed", "max",
        "--duration", "600", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr


def _wait_for_events(paths: list[Path], count: int) -> None:
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        ready = 0
        for path in paths:
            if path.exists() and not is_new(path):
                with Journal.open(path, readonly=True) as journal:
                    ready += journal.event_count() >= count
        if ready == len(paths):
            return
        time.sleep(0.05)
    pytest.fail(f"no {count} events in each of {paths} within {HANG} s")


def _start(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "gridcore.shells.cli", "run", "--config", "bots.toml",
            "--journal-dir", "runs", "--speed", "100",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_sigint_stops_every_account_with_a_final_snapshot(tmp_path: Path) -> None:
    _setup(tmp_path)
    paths = [tmp_path / "runs" / f"{name}.db" for name in NAMES]
    proc = _start(tmp_path)
    try:
        _wait_for_events(paths, 30)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=HANG)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=HANG)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    for name, path in zip(NAMES, paths, strict=True):
        assert f"account {name}: stopped (signal SIGINT)" in out
        with Journal.open(path, readonly=True) as journal:
            assert journal.last_snapshot_seq == journal.last_seq >= 30
        _replays(tmp_path, name)


# slow: the default run resumes each account from its journal in-process.
@pytest.mark.slow
def test_sigkill_then_each_account_recovers_from_its_journal(tmp_path: Path) -> None:
    _setup(tmp_path)
    paths = [tmp_path / "runs" / f"{name}.db" for name in NAMES]
    before: dict[str, dict[str, object]] = {}
    for round_ in range(3):  # killed three times, each once every journal has advanced
        proc = _start(tmp_path)
        try:
            wanted = 200 * (round_ + 1)
            _wait_for_events(paths, wanted)
            proc.kill()
            proc.wait(timeout=HANG)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=HANG)
        assert proc.returncode == -signal.SIGKILL
        killed = _inspect(tmp_path)
        for name in NAMES:
            assert killed[name]["events"] >= wanted  # type: ignore[operator]
            if before:
                assert killed[name]["last_seq"] >= before[name]["last_seq"]  # type: ignore[operator]
            _replays(tmp_path, name)
        before = killed
    run = _run(
        "run", "--config", "bots.toml", "--journal-dir", "runs", "--speed", "max",
        "--duration", "1200", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    after = _inspect(tmp_path)
    for name in NAMES:
        assert f"account {name}: resuming journal" in run.stderr
        assert after[name]["last_seq"] > before[name]["last_seq"]  # type: ignore[operator]
        assert after[name]["invariants"] == {"ok": True, "violations": []}
        assert after[name]["duplicate_cloids"] == []
        _replays(tmp_path, name)
        # Each account's venue received each of its client order ids once: no blind re-send.
        saved = saved_venue(tmp_path / "runs" / f"{name}.db")
        assert saved is not None
        assert describe(saved)["max_sends_per_cloid"] == 1


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('\n[[accounts]]\nname = "Bad Name"\n', "accounts[3].name"),
        ('\n[[accounts]]\nname = "alice"\n', "accounts[3].name"),
        ('\n[[accounts]]\nname = "dave"\napi_key = "k"\n', "accounts[3] (dave).api_key"),
        ('\n[[accounts]]\nname = "dave"\nlevels = 3\n', "accounts[3] (dave).levels"),
        ('\n[[accounts]]\nname = "dave"\n[accounts.grid]\nlevels = -1\n', "grid.levels"),
    ],
)
def test_a_bad_account_entry_fails_at_load_naming_the_field(
    tmp_path: Path, extra: str, field: str
) -> None:
    _setup(tmp_path, extra=extra)
    run = _run("run", "--config", "bots.toml", "--journal-dir", "runs", cwd=tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gridcore: error: "), run.stderr
    assert field in lines[0]
    assert list((tmp_path / "runs").iterdir()) == []  # nothing was created


def test_an_account_that_cannot_start_keeps_out_alone(tmp_path: Path) -> None:
    # bob's journal was started by a one-bot run with another configuration.
    _setup(tmp_path, bob_faults="none", extra="")
    solo = _run(
        "run", "--journal", "runs/bob.db", "--speed", "max", "--duration", "60", cwd=tmp_path
    )  # fmt: skip
    assert solo.returncode == 0, solo.stderr
    text = (tmp_path / "bots.toml").read_text()
    (tmp_path / "bots.toml").write_text(
        text.replace('faults = "none"\n', 'faults = "none"\n[accounts.grid]\nlevels = 3\n')
    )
    run = _run(
        "run", "--config", "bots.toml", "--journal-dir", "runs", "--speed", "max",
        "--duration", "600", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "gridcore: error: account bob: " in run.stderr and "grid.levels" in run.stderr
    assert "accounts: alice 0, bob 2, carol 0; exit 2" in run.stdout
    reports = _inspect(tmp_path)
    assert reports["alice"]["fills"] == reports["carol"]["fills"]
    assert reports["bob"]["now"] < reports["alice"]["now"]  # type: ignore[operator]


def test_signals_until_the_process_is_gone_leave_every_journal_whole(tmp_path: Path) -> None:
    _setup(tmp_path)
    paths = [tmp_path / "runs" / f"{name}.db" for name in NAMES]
    proc = _start(tmp_path)
    try:
        _wait_for_events(paths, 30)
        deadline = time.monotonic() + HANG
        while proc.poll() is None and time.monotonic() < deadline:
            proc.send_signal(signal.SIGINT)  # the second one cuts every drain short
            time.sleep(0.02)
        out, err = proc.communicate(timeout=HANG)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=HANG)
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    for name, path in zip(NAMES, paths, strict=True):
        assert f"account {name}: stopped (signal SIGINT)" in out
        with Journal.open(path, readonly=True) as journal:
            assert journal.last_snapshot_seq == journal.last_seq >= 30
        _replays(tmp_path, name)
    again = _run(
        "run", "--config", "bots.toml", "--journal-dir", "runs", "--speed", "max",
        "--duration", "300", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr


def test_accounts_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "bob.toml").write_text('faults = "chaos"\n[grid]\nlevels = 3\n')
    args = ("run", "--account", "alice", "--account", "bob=bob.toml", "--journal-dir", "runs")
    run = _run(*args, "--speed", "max", "--duration", "1800", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "accounts: alice 0, bob 0; exit 0" in run.stdout
    with Journal.open(tmp_path / "runs" / "bob.db", readonly=True) as journal:
        assert "levels = 3" in journal.meta()["config"]
    with Journal.open(tmp_path / "runs" / "alice.db", readonly=True) as journal:
        assert "levels = 5" in journal.meta()["config"]
    assert sorted(_inspect(tmp_path)) == ["alice", "bob"]
    missing = _run("run", "--account", "bob=nope.toml", "--journal-dir", "runs", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith("gridcore: error: --account bob=nope.toml: cannot read")
    # A journal of the directory that cannot be read is that account's error, not the others'.
    (tmp_path / "runs" / "zed.db").write_bytes(b"not a journal" * 100)
    report = _run("inspect", "runs", "--json", cwd=tmp_path)
    assert report.returncode in (2, 3), report.stdout + report.stderr
    entries = {e["account"]: e for e in json.loads(report.stdout)["accounts"]}
    assert sorted(entries) == ["alice", "bob", "zed"]
    assert entries["zed"]["exit"] == report.returncode and entries["zed"]["error"]
    assert entries["alice"]["invariants"]["ok"] and "error" not in entries["alice"]
    assert "gridcore: error: account zed: " in report.stderr
    text = _run("inspect", "runs/alice.db", "runs/bob.db", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "account alice" in text.stdout and "account bob" in text.stdout


def _scrape(url: str) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_each_account_serves_its_own_metrics(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gridcore.shells.cli", "run", "--account", "alice",
            "--account", "bob", "--journal-dir", "runs", "--speed", "100", "--metrics-port", "0",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        urls: dict[str, str] = {}
        while len(urls) < 2:
            line = proc.stderr.readline()
            assert line, "the run ended before printing its metrics addresses"
            if " metrics at " in line:
                name = line.split("account ", 1)[1].split(":", 1)[0]
                urls[name] = line.rsplit(" ", 1)[1].strip()
        assert sorted(urls) == ["alice", "bob"] and urls["alice"] != urls["bob"]
        _wait_for_events([tmp_path / "runs" / "alice.db", tmp_path / "runs" / "bob.db"], 30)
        deadline = time.monotonic() + HANG
        seen: dict[str, float] = {}
        while len(seen) < 2 and time.monotonic() < deadline:
            for name, url in urls.items():
                events = _scrape(url).get("gridcore_events_total", 0.0)
                if events > 0:
                    seen[name] = events
            time.sleep(0.05)
        assert sorted(seen) == ["alice", "bob"]
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=HANG)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=HANG)
    assert proc.returncode == 0
    assert "accounts: alice 0, bob 0; exit 0" in out


def test_a_busy_metrics_port_stops_the_run_before_anything_is_written(tmp_path: Path) -> None:
    import socket

    (tmp_path / "runs").mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = _run(
            "run", "--account", "alice", "--account", "bob", "--journal-dir", "runs",
            "--metrics-port", str(port - 1), "--duration", "60", cwd=tmp_path,
        )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("gridcore: error: ")
    assert list((tmp_path / "runs").iterdir()) == []

"""``gridcore run --metrics-port``: a running paper bot (the real CLI, in a subprocess) serves
Prometheus metrics over loopback. No timing assertion: the test polls until the metrics appear,
under a generous overall limit that only a real hang reaches."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gridcore.shells.metrics import CATALOG

HANG = 180.0  # seconds: only a hung bot or exporter gets here
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    err = tmp_path / "stderr.txt"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridcore.shells.cli",
            "run",
            "--journal",
            str(tmp_path / "j.db"),
            "--speed",
            "20",
            "--duration",
            "86400",
            "-q",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=err.open("wb"),
        cwd=tmp_path,
    )
    return proc, err


def _poll(what: str, deadline: float, proc: subprocess.Popen[bytes], check: object) -> object:
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the bot exited ({proc.returncode}) before {what}"
        got = check()  # type: ignore[operator]
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {HANG} s: hung")


def _families(text: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", text, flags=re.M))


def test_a_running_paper_bot_serves_its_metrics(tmp_path: Path) -> None:
    proc, err = _start(tmp_path, "--metrics-port", "0")
    deadline = time.monotonic() + HANG
    try:

        def url() -> str | None:
            m = re.search(r"metrics at (http://127\.0\.0\.1:\d+/metrics)", err.read_text())
            return m.group(1) if m else None

        address = str(_poll("metrics address on stderr", deadline, proc, url))

        def scrape() -> str | None:
            try:
                with urllib.request.urlopen(address, timeout=10) as answer:
                    text = answer.read().decode()
            except OSError:
                return None
            # Wait for the first fills: then every kind of metric has a value.
            filled = re.search(
                r'^gridcore_fills_total\{side="buy",source="stream"\} ([1-9])', text, re.M
            )
            return text if "gridcore_position{" in text and filled else None

        text = str(_poll("metrics with a fill", deadline, proc, scrape))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=HANG)
    assert proc.returncode == 0, err.read_text()

    families = _families(text)
    for m in CATALOG:
        # A counter's TYPE line names it with or without _total, by prometheus-client version.
        assert m.name in families or m.name.removesuffix("_total") in families, m.name
    samples = {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line.startswith("gridcore_")
    }
    # Everything the shipped dashboard and alerts use has a value on a healthy bot, except the
    # drift metrics, which exist only while a drift is unconfirmed.
    doc = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    used = set(re.findall(r"\bgridcore_[a-z_]+\b", json.dumps(doc)))
    used |= set(
        re.findall(r"\bgridcore_[a-z_]+\b", (EXAMPLES / "prometheus-alerts.yml").read_text())
    )
    drift = {"gridcore_position_drift", "gridcore_position_drift_ratio"}
    assert used - drift <= samples, used - drift - samples
    assert re.search(r'^gridcore_feed_up\{venue="sim"\} 1\.0$', text, re.M)
    assert re.search(r"^gridcore_halted 0\.0$", text, re.M)


def test_a_busy_port_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "gridcore.shells.cli",
                "run",
                "--journal",
                str(tmp_path / "j.db"),
                "--duration",
                "1",
                "--metrics-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=HANG,
        )
    assert done.returncode == 2
    assert done.stderr.startswith(f"gridcore: error: --metrics-port {port}: cannot serve")
    assert not (tmp_path / "j.db").exists()

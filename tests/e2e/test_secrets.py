"""Secrets never leak: canaries planted in the environment and in a venue's errors must never
appear on stdout, on stderr, in the journal's or the venue's files, or in ``inspect --json``.

The real ``gridcore run`` runs in a subprocess whose simulated venue answers every command
with an error that echoes credentials, the way a real HTTP client's exception quotes the
request URL: a key from the environment, ``?api_key=...&signature=...``, a bearer token and a
private key in hex. The bot journals those failures, alerts and halts on the error streak, so
the text reaches every place an operator (or an attacker with the files) could read it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HANG = 120.0  # a safety net against hangs only

ENV_SECRET = "canary-env-secret-5f1e2d3c"  # in GRIDCORE_CANARY_API_SECRET
ENV_KEY = "canaryEnvKey7Q2w"  # in VENUE_API_KEY
URL_KEY = "canary-url-key-77aa"  # only in the error text
URL_SIGNATURE = "c0ffee5151"  # only in the error text
BEARER = "canary.bearer.tok3n"  # only in the error text
PRIVATE_HEX = "9b" * 32  # only in the error text (a 32-byte private key)
CANARIES = (ENV_SECRET, ENV_KEY, URL_KEY, URL_SIGNATURE, BEARER, PRIVATE_HEX)

# The real command line, with the simulated venue's execute replaced by a leaky failure.
_LEAKY_RUN = f"""
import os, sys
from gridcore.shells import simvenue
from gridcore.shells.runtime import VenueError

async def execute(self, command):
    raise VenueError(
        "POST https://api.venue.test/v5/order/create?api_key={URL_KEY}"
        "&signature={URL_SIGNATURE} failed: 401 for key "
        + os.environ["VENUE_API_KEY"] + " / " + os.environ["GRIDCORE_CANARY_API_SECRET"]
        + " (Authorization: Bearer {BEARER}; signer 0x{PRIVATE_HEX})",
        not_applied=True,
    )

simvenue.SimVenue.execute = execute
from gridcore.shells.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "GRIDCORE_CANARY_API_SECRET": ENV_SECRET,
        "VENUE_API_KEY": ENV_KEY,
        "COLUMNS": "200",
    }


def _run(*args: str, cwd: Path, code: str | None = None) -> subprocess.CompletedProcess[str]:
    head = ["-c", code] if code is not None else ["-m", "gridcore.shells.cli"]
    return subprocess.run(
        [sys.executable, *head, *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=HANG,
    )


def _assert_clean(where: str, text: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"{where} leaks {canary!r}:\n{text}"


def test_canaries_never_reach_output_journal_or_inspect(tmp_path: Path) -> None:
    run = _run(
        "run", "--journal", "j.db", "--speed", "max", "--duration", "120", "-v",
        cwd=tmp_path, code=_LEAKY_RUN,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    _assert_clean("run stdout", run.stdout)
    _assert_clean("run stderr", run.stderr)
    # The failures did flow to the operator, redacted: the alert quotes the venue's text.
    assert "[alert] halted" in run.stderr, run.stderr
    assert "api_key=[redacted]" in run.stderr
    assert "[redacted:GRIDCORE_CANARY_API_SECRET]" in run.stderr

    files = sorted(p for p in tmp_path.iterdir() if p.name.startswith("j.db"))
    assert files, list(tmp_path.iterdir())
    journaled = b""
    for path in files:
        data = path.read_bytes()
        journaled += data
        for canary in CANARIES:
            assert canary.encode() not in data, f"{path.name} leaks {canary!r}"
    assert b"[redacted:VENUE_API_KEY]" in journaled  # the reasons were journaled, redacted

    report = _run("inspect", "j.db", "--json", cwd=tmp_path)
    _assert_clean("inspect --json", report.stdout + report.stderr)
    doc = json.loads(report.stdout)
    assert doc["halted"] is True
    assert "[redacted" in doc["halt_reason"]

    text = _run("inspect", "j.db", cwd=tmp_path)
    _assert_clean("inspect", text.stdout + text.stderr)
    replay = _run("replay", "j.db", cwd=tmp_path)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    _assert_clean("replay", replay.stdout + replay.stderr)


# An adapter bug: its market-data feed raises. The exception propagates and stops the bot.
_BUGGY_RUN = f"""
import os, sys
from gridcore.shells import simvenue

async def run(self, sink):
    raise RuntimeError(
        "adapter bug at https://api.venue.test/v5/ws?api_key={URL_KEY}&signature="
        "{URL_SIGNATURE} with " + os.environ["VENUE_API_KEY"]
    )

simvenue.SimVenue.run = run
from gridcore.shells.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_an_unexpected_exception_prints_a_redacted_traceback(tmp_path: Path) -> None:
    """A bug is reported with its whole traceback (exit 70), and still never with a secret."""
    run = _run(
        "run", "--journal", "j.db", "--speed", "max", "--duration", "120", "-q",
        cwd=tmp_path, code=_BUGGY_RUN,
    )  # fmt: skip
    assert run.returncode == 70, run.stderr
    assert "Traceback" in run.stderr and "RuntimeError: adapter bug" in run.stderr
    assert "internal error" in run.stderr
    assert "[redacted" in run.stderr  # the text did arrive, redacted
    _assert_clean("stderr", run.stderr)
    _assert_clean("stdout", run.stdout)

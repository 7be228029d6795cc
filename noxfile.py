"""Developer sessions: ``nox -s tests lint typecheck bench`` (and ``slow``, ``fuzz``,
``thorough``, ``proofs``, ``coverage``, ``crash``)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite's default run, the tests marked ``slow`` left out (hypothesis profile from
    HYPOTHESIS_PROFILE, default ``ci``)."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", "-n", "auto", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """The tests marked ``slow``: the real bots' searches at their defaults, the drawn two-venue
    searches, the random-point SIGKILL runs and the other long end-to-end runs. CI runs them
    after the default run."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", "-n", "auto", "-m", "slow", *session.posargs)


@nox.session
def coverage(session: nox.Session) -> None:
    """The whole test suite (``slow`` included) under coverage: branch coverage of gridcore/ (CLI
    subprocesses included), with missing lines and branches listed; fails under
    [tool.coverage.report] fail_under."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "coverage", "erase")
    session.run(
        "python", "-m", "coverage", "run", "-m", "pytest", "-n", "auto", "-m", "", *session.posargs
    )
    session.run("python", "-m", "coverage", "combine", "--quiet")
    session.run("python", "-m", "coverage", "report")


@nox.session
def thorough(session: nox.Session) -> None:
    """The property and stateful tests with many more examples."""
    session.install("-e", ".[dev]")
    session.run(
        "python",
        "-m",
        "pytest",
        "-m",
        "",
        "tests/property",
        "tests/stateful",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": "thorough"},
    )


@nox.session
def fuzz(session: nox.Session) -> None:
    """The hostile-input fuzz at 10**6 events: 2,000 examples of 500 hostile events each."""
    session.install("-e", ".[dev]")
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/property/test_hostile_input.py",
        *session.posargs,
        env={
            "HYPOTHESIS_PROFILE": "thorough",
            "GRIDCORE_FUZZ_EXAMPLES": "2000",
            "GRIDCORE_FUZZ_EVENTS": "500",
        },
    )
    # Mutated Hyperliquid messages through the adapter's live entry points.
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/integration/test_hyperliquid_fuzz.py",
        *session.posargs,
        env={"GRIDCORE_VENUE_FUZZ_MESSAGES": "300000"},
    )


@nox.session
def proofs(session: nox.Session) -> None:
    """The harness's proofs (tests/harness) searched again on seeds 1 to 6 besides the fixed
    derandomized search of the test suite: every broken bot must still be caught and every real
    bot must still pass on each (``nox -s proofs -- -x`` stops at the first failure)."""
    session.install("-e", ".[dev]")
    for seed in range(1, 7):
        session.run(
            "python",
            "-m",
            "pytest",
            "-n",
            "auto",
            "-m",
            "",  # the slow searches too: the real bots at their defaults above all
            "tests/harness",
            *session.posargs,
            env={"GRIDCORE_PROOF_SEED": str(seed)},
        )


@nox.session
def crash(session: nox.Session) -> None:
    """The live Hyperliquid CLI SIGKILLed 100 times over the real wire (the default run: 5)."""
    session.install("-e", ".[dev]")
    session.run(
        "python",
        "-m",
        "pytest",
        "-m",
        "",
        "tests/e2e/test_hyperliquid_crash.py",
        *session.posargs,
        env={"GRIDCORE_CRASH_KILLS": "100"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the library, the shells, the tests and the examples."""
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: reducer ticks/fills per second, backtest events per second, the journal,
    paper (``--speed max``) and replay events per second (see docs/benchmarks.md)."""
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/run.py", *session.posargs)
    session.run("python", "benchmarks/bench_hyperliquid.py")


@nox.session
def peer(session: nox.Session) -> None:
    """The peer benchmark: gridcore against Nautilus Trader 1.221.0 (installed in this session's
    own environment) on the same workloads; writes benchmarks/peer_results.json and regenerates
    the peer tables of docs/benchmarks.md (``-- --quick`` for a smoke run that leaves them)."""
    session.install("-e", ".")
    session.install("nautilus_trader==1.221.0")
    outputs = ["--json", "benchmarks/peer_results.json", "--docs", "docs/benchmarks.md"]
    quick = "--quick" in session.posargs
    session.run("python", "benchmarks/peer_bench.py", *([] if quick else outputs), *session.posargs)

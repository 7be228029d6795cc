"""``gridcore backtest`` as a user runs it: the installed console script, in a subprocess.

Runs are kept small (a few thousand ticks) except one true no-argument default run. The last
section checks the same promises through the library, where the ledger and the exchange model
can be compared field by field.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gridcore.config import load_config
from gridcore.numbers import CTX
from gridcore.sim import PROFILES, Trace, backtest, make_path, profile

SUMMARY_KEYS = [
    "seed",
    "faults",
    "injected",
    "ticks",
    "events",
    "commands",
    "fills",
    "orders",
    "cancels",
    "rejections",
    "volume",
    "realized_pnl",
    "unrealized_pnl",
    "fees",
    "funding",
    "net_pnl",
    "max_drawdown",
    "max_position",
    "final_position",
    "recenters",
    "syncs",
    "drift_repairs",
    "halted",
    "alerts",
    "warnings",
    "invariant_violations",
    "start_ts",
    "end_ts",
]
DECIMAL_KEYS = {
    "volume",
    "realized_pnl",
    "unrealized_pnl",
    "fees",
    "funding",
    "net_pnl",
    "max_drawdown",
    "max_position",
    "final_position",
}
STRING_KEYS = {"faults"}
BOOL_KEYS = {"halted"}


def _console_script() -> str:
    """The ``gridcore`` script installed next to this interpreter (else the one on PATH)."""
    here = Path(sys.executable).with_name("gridcore")
    found = str(here) if here.exists() else shutil.which("gridcore")
    if found is None:
        pytest.fail("the gridcore console script is not installed: run pip install -e .")
    return found


GRIDCORE = _console_script()
# Rich honours these; a test must see what a user piping the output sees.
_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in {"FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "NO_COLOR"}
}


def gridcore(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Run ``gridcore backtest ARGS`` and capture stdout and stderr as bytes."""
    return subprocess.run(
        [GRIDCORE, "backtest", *map(str, args)],
        capture_output=True,
        cwd=cwd,
        env=_ENV,
        timeout=300,
        check=False,
    )


def run_json(*args: str | Path, cwd: Path) -> dict[str, Any]:
    """Run with ``--json``; assert success and that stdout is exactly one JSON object."""
    done = gridcore(*args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr.decode()
    doc = json.loads(done.stdout)  # raises if anything but the JSON object is on stdout
    assert isinstance(doc, dict)
    return doc


def error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    """The one stderr line of a usage/config/data error (exit 2, nothing on stdout)."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == b""
    text = done.stderr.decode()
    assert "Traceback" not in text
    assert text.count("\n") == 1 and text.endswith("\n"), text
    return text.rstrip("\n")


def write_market_csv(path: Path, ticks: int, *, iso_price: bool = False) -> None:
    """The default config's synthetic market as a CSV file, in one of the two formats."""
    rows = make_path(load_config(), ticks=ticks)
    with path.open("w", encoding="utf-8") as f:
        if iso_price:
            epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
            f.write("timestamp,price\n")
            for q in rows:
                stamp = (epoch + dt.timedelta(milliseconds=q.ts)).isoformat()
                f.write(f"{stamp.replace('+00:00', 'Z')},{q.bid}\n")
        else:
            f.write("timestamp,bid,ask,source\n")
            for q in rows:
                f.write(f"{q.ts},{q.bid},{q.ask},synthetic\n")


# --- the default run and the table --------------------------------------------------------------


def test_no_arguments_runs_a_day_of_the_default_grid_and_prints_the_table(tmp_path: Path) -> None:
    done = gridcore(cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""  # no progress bar when stderr is not a terminal
    out = done.stdout.decode()
    assert "\x1b[" not in out  # no colour codes into a pipe
    for label in (
        "events processed",
        "events per second",
        "fills",
        "orders placed",
        "volume (USD)",
        "realized PnL (USD)",
        "unrealized PnL (USD)",
        "fees paid (USD)",
        "funding received (USD)",
        "max drawdown (USD)",
        "max position (BTC)",
        "invariant violations",
    ):
        assert label in out, label
    assert "synthetic, 86,400 ticks" in out
    rows = {
        cells[1].strip(): cells[2].strip()
        for line in out.splitlines()
        if len(cells := line.split("│")) == 4
    }
    assert rows["market ticks"] == "86,400"
    assert rows["invariant violations"] == "0"
    assert int(rows["fills"].replace(",", "")) > 0
    # Money is rounded for humans: two decimals.
    assert rows["net PnL (USD)"].rsplit(".", 1)[1].isdigit()
    assert len(rows["net PnL (USD)"].rsplit(".", 1)[1]) == 2


# --- --json -------------------------------------------------------------------------------------


def test_json_has_the_documented_shape(tmp_path: Path) -> None:
    doc = run_json("--ticks", "4000", "--faults", "flaky", cwd=tmp_path)
    assert list(doc) == ["summary", "results", "violations", "performance"]
    summary = doc["summary"]
    assert list(summary) == SUMMARY_KEYS
    for key, value in summary.items():
        if key in DECIMAL_KEYS:
            assert isinstance(value, str) and "E" not in value.upper(), (key, value)
            Decimal(value)
        elif key in STRING_KEYS:
            assert isinstance(value, str)
        elif key in BOOL_KEYS:
            assert isinstance(value, bool)
        elif key == "injected":
            assert all(type(n) is int and n >= 0 for n in value.values()), value
        else:
            assert type(value) is int, (key, value)
    assert summary["ticks"] == 4000
    assert summary["faults"] == "flaky"
    assert summary["seed"] == 1
    assert summary["invariant_violations"] == 0
    assert doc["violations"] == []
    perf = doc["performance"]
    assert list(perf) == ["events", "wall_seconds", "events_per_second"]
    assert perf["events"] == summary["events"] > summary["ticks"]
    assert perf["wall_seconds"] > 0
    assert perf["events_per_second"] > 0


def test_same_seed_gives_byte_identical_json_apart_from_performance(tmp_path: Path) -> None:
    args = ("--ticks", "5000", "--seed", "7", "--faults", "chaos", "--json")
    first, second = gridcore(*args, cwd=tmp_path), gridcore(*args, cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    assert first.stderr == second.stderr == b""
    # performance is the last key: everything before it must match byte for byte.
    cut = b'"performance"'
    assert first.stdout.count(cut) == 1
    assert first.stdout.split(cut)[0] == second.stdout.split(cut)[0]
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    del a["performance"], b["performance"]
    assert a == b


def test_no_step_checks_gives_the_same_result(tmp_path: Path) -> None:
    args = ("--ticks", "5000", "--seed", "7", "--faults", "chaos")
    checked = run_json(*args, cwd=tmp_path)
    unchecked = run_json(*args, "--no-step-checks", cwd=tmp_path)
    assert checked["summary"]["fills"] > 0
    del checked["performance"], unchecked["performance"]
    assert unchecked == checked


def test_another_seed_gives_another_market(tmp_path: Path) -> None:
    one = run_json("--ticks", "4000", "--seed", "1", cwd=tmp_path)["summary"]
    two = run_json("--ticks", "4000", "--seed", "2", cwd=tmp_path)["summary"]
    assert one["seed"] == 1 and two["seed"] == 2
    assert (one["volume"], one["net_pnl"]) != (two["volume"], two["net_pnl"])


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_fault_profile_ends_with_zero_invariant_violations(name: str, tmp_path: Path) -> None:
    doc = run_json("--ticks", "8000", "--seed", "3", "--faults", name, cwd=tmp_path)
    assert doc["summary"]["faults"] == name
    assert doc["summary"]["invariant_violations"] == 0
    assert doc["violations"] == []
    assert doc["summary"]["fills"] > 0


# --- --config -----------------------------------------------------------------------------------


def test_config_file_is_used(tmp_path: Path) -> None:
    (tmp_path / "small.toml").write_text("[market]\nticks = 2500\nseed = 9\n")
    summary = run_json("--config", "small.toml", cwd=tmp_path)["summary"]
    assert (summary["ticks"], summary["seed"]) == (2500, 9)


def test_bad_config_field_is_named(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text("[grid]\nlevels = 0\n")
    line = error_line(gridcore("--config", "grid.toml", cwd=tmp_path))
    assert line == "gridcore: error: grid.toml: grid.levels: must be between 1 and 100, got 0"


def test_unknown_config_setting_is_named(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text('[grid]\nlevles = 3\nspacing = "0.002"\n')
    line = error_line(gridcore("--config", "grid.toml", cwd=tmp_path))
    assert line.startswith("gridcore: error: grid.toml: grid.levles: unknown setting")


def test_float_money_in_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text("[venue]\nstarting_balance = 1000.5\n")
    line = error_line(gridcore("--config", "grid.toml", cwd=tmp_path))
    assert line.startswith("gridcore: error: grid.toml: venue.starting_balance: ")
    assert "floats are not exact" in line


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    line = error_line(gridcore("--config", "nope.toml", cwd=tmp_path))
    assert line == (
        "gridcore: error: nope.toml: no such file; "
        "'gridcore init nope.toml' writes the default configuration there"
    )


# --- --faults -----------------------------------------------------------------------------------


def test_unknown_fault_profile_lists_the_profiles(tmp_path: Path) -> None:
    line = error_line(gridcore("--faults", "gremlins", cwd=tmp_path))
    assert line.startswith("gridcore: error: unknown fault profile 'gremlins'")
    for name in PROFILES:
        assert name in line


# --- --data -------------------------------------------------------------------------------------


def test_data_with_bid_ask_and_ms_timestamps_replays_the_synthetic_market(tmp_path: Path) -> None:
    write_market_csv(tmp_path / "quotes.csv", 4000)
    from_csv = run_json("--data", "quotes.csv", "--faults", "lossy", cwd=tmp_path)
    synthetic = run_json("--ticks", "4000", "--faults", "lossy", cwd=tmp_path)
    # The same quotes, read from a file, make the same backtest.
    assert from_csv["summary"] == synthetic["summary"]
    assert from_csv["summary"]["fills"] > 0


def test_data_with_price_and_iso_timestamps(tmp_path: Path) -> None:
    # The default synthetic market is one tick wide, so price-only rows give the same quotes.
    write_market_csv(tmp_path / "prices.csv", 4000, iso_price=True)
    from_csv = run_json("--data", "prices.csv", cwd=tmp_path)["summary"]
    synthetic = run_json("--ticks", "4000", cwd=tmp_path)["summary"]
    assert from_csv == synthetic


def test_ticks_takes_the_first_rows_of_the_data(tmp_path: Path) -> None:
    write_market_csv(tmp_path / "quotes.csv", 3000)
    summary = run_json("--data", "quotes.csv", "--ticks", "1200", cwd=tmp_path)["summary"]
    assert summary["ticks"] == 1200
    assert summary["start_ts"] == load_config().market.start_ts


def test_data_run_prints_the_table_naming_the_file(tmp_path: Path) -> None:
    write_market_csv(tmp_path / "quotes.csv", 3000)
    done = gridcore("--data", "quotes.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert "quotes.csv" in done.stdout.decode()
    assert "3,000" in done.stdout.decode()


def test_a_run_that_cannot_trade_says_why(tmp_path: Path) -> None:
    # A 3,000 USD market: the default 0.002 BTC per level is under the 10 USD minimum notional.
    rows = "".join(f"{1704067200000 + i * 1000},{3000 + i % 40}\n" for i in range(2000))
    (tmp_path / "eth.csv").write_text("timestamp,price\n" + rows)
    done = gridcore("--data", "eth.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert "warnings and alerts" in out
    assert "refused:min_notional" in out


def test_bad_csv_line_is_named_with_its_number_and_column(tmp_path: Path) -> None:
    write_market_csv(tmp_path / "quotes.csv", 3000)
    lines = (tmp_path / "quotes.csv").read_text().splitlines(keepends=True)
    ts = lines[16].split(",")[0]
    lines[16] = f"{ts},abc,50000.1,synthetic\n"  # line 17 of the file
    (tmp_path / "quotes.csv").write_text("".join(lines))
    line = error_line(gridcore("--data", "quotes.csv", cwd=tmp_path))
    assert line == "gridcore: error: quotes.csv:17: bid: 'abc' is not a number"


def test_bad_csv_line_deep_in_the_file_stops_the_run_cleanly(tmp_path: Path) -> None:
    write_market_csv(tmp_path / "quotes.csv", 3000)
    with (tmp_path / "quotes.csv").open("a") as f:
        f.write("1600000000000,50000.0,50000.1,synthetic\n")  # line 3002: back in time
    line = error_line(gridcore("--data", "quotes.csv", cwd=tmp_path))
    assert line.startswith(
        "gridcore: error: quotes.csv:3002: timestamp: 1600000000000 is not after"
    )


def test_csv_without_header_is_named(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_text("1700000000000,100,101\n")
    line = error_line(gridcore("--data", "q.csv", cwd=tmp_path))
    assert line.startswith("gridcore: error: q.csv:1: no header row")


def test_missing_data_file_is_named(tmp_path: Path) -> None:
    line = error_line(gridcore("--data", "missing.csv", cwd=tmp_path))
    assert line == "gridcore: error: missing.csv: no such file"


# --- --plot -------------------------------------------------------------------------------------


def test_plot_writes_a_png(tmp_path: Path) -> None:
    done = gridcore("--ticks", "5000", "--faults", "chaos", "--plot", "run.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    png = (tmp_path / "run.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 20_000  # three panels of lines and markers, not an empty canvas
    assert "plot written to run.png" in done.stdout.decode()


def test_plot_with_json_keeps_stdout_pure_json(tmp_path: Path) -> None:
    done = gridcore("--ticks", "3000", "--plot", "run.png", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    json.loads(done.stdout)
    assert done.stderr.decode() == "plot written to run.png\n"
    assert (tmp_path / "run.png").stat().st_size > 0


def test_plot_does_not_change_the_summary(tmp_path: Path) -> None:
    args = ("--ticks", "20000", "--seed", "1")
    plain = run_json(*args, cwd=tmp_path)["summary"]
    plotted = run_json(*args, "--plot", "run.png", cwd=tmp_path)["summary"]
    assert plotted == plain


def test_plot_into_a_missing_directory_fails_before_running(tmp_path: Path) -> None:
    line = error_line(gridcore("--plot", "no/such/dir/run.png", cwd=tmp_path))
    assert (
        line
        == "gridcore: error: --plot no/such/dir/run.png: directory 'no/such/dir' does not exist"
    )


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path: Path) -> None:
    # The real command line, in an interpreter where matplotlib cannot be imported.
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        "from gridcore.shells.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "backtest", "--ticks", "1000", "--plot", "x.png"],
        capture_output=True,
        cwd=tmp_path,
        env=_ENV,
        timeout=120,
        check=False,
    )
    line = error_line(done)
    assert "pip install 'gridcore[plot]'" in line
    assert not (tmp_path / "x.png").exists()


# --- usage --------------------------------------------------------------------------------------


def test_help_lists_every_option(tmp_path: Path) -> None:
    done = subprocess.run(
        [GRIDCORE, "backtest", "--help"], capture_output=True, cwd=tmp_path, env=_ENV, check=False
    )
    assert done.returncode == 0
    text = done.stdout.decode()
    for option in ("--config", "--data", "--seed", "--ticks", "--faults", "--plot", "--json"):
        assert option in text
    for name in PROFILES:
        assert name in text


@pytest.mark.parametrize("ticks", ["0", "-5", "many"])
def test_bad_ticks_is_a_usage_error(ticks: str, tmp_path: Path) -> None:
    done = gridcore("--ticks", ticks, cwd=tmp_path)
    assert done.returncode == 2
    assert b"--ticks" in done.stderr
    assert b"Traceback" not in done.stderr


# --- the same promises through the library ------------------------------------------------------

LIBRARY_TICKS = 20_000
LIBRARY_SEED = 1


@functools.cache
def library_trace(name: str) -> Trace:
    return backtest(load_config(), seed=LIBRARY_SEED, ticks=LIBRARY_TICKS, faults=profile(name))


@pytest.mark.parametrize("name", list(PROFILES))
def test_library_run_under_every_profile_is_clean(name: str) -> None:
    trace = library_trace(name)
    assert trace.summary.invariant_violations == 0, trace.violations
    assert trace.violations == ()
    assert not trace.state.inflight  # every command got its result


@pytest.mark.parametrize("name", [n for n in PROFILES if n != "none"])
def test_fault_profiles_really_inject_faults(name: str) -> None:
    clean, faulty = library_trace("none").summary, library_trace(name).summary
    assert (faulty.events, faulty.commands) != (clean.events, clean.commands)


@pytest.mark.parametrize("name", list(PROFILES))
def test_ledger_positions_and_fees_equal_the_exchange(name: str) -> None:
    trace = library_trace(name)
    venue = trace.exchange.config.venue
    ledger = {
        (symbol, side): pos
        for (v, symbol, side), pos in trace.state.ledger.positions.items()
        if v == venue
    }
    assert set(ledger) == set(trace.exchange.positions)
    assert ledger  # the grid traded
    for key, theirs in trace.exchange.positions.items():
        ours = ledger[key]
        assert ours.qty == theirs.qty, key
        assert ours.avg_entry == theirs.avg_entry, key
        assert ours.realized == theirs.realized, key
        assert ours.fees == theirs.fees, key
        assert ours.funding == theirs.funding, key
    fees = Decimal(0)
    for fill in trace.exchange.fills:
        fees = CTX.add(fees, fill.fee)
    assert fees == trace.summary.fees
    # every venue fill was applied exactly once (none lost, none counted twice)
    assert trace.state.ledger.fill_count == len(trace.exchange.fills) > 0
    assert trace.summary.drift_repairs == 0


@pytest.mark.parametrize("name", list(PROFILES))
def test_exchange_cash_is_start_plus_realized_minus_fees_plus_funding(name: str) -> None:
    trace = library_trace(name)
    totals = trace.state.ledger.totals()
    start = load_config().venue.starting_balance
    expected = CTX.add(CTX.subtract(CTX.add(start, totals.realized), totals.fees), totals.funding)
    assert trace.exchange.cash == expected


# --- one set of rules for flags and config; configurations that cannot trade ---------------------


@pytest.mark.parametrize(
    ("flag", "value", "table", "key"),
    [
        ("--ticks", "0", "market", "ticks"),
        ("--ticks", "-5", "market", "ticks"),
        ("--seed", "-1", "market", "seed"),
        ("--seed", str(2**64), "market", "seed"),
    ],
)
def test_a_flag_and_its_config_key_refuse_a_value_with_the_same_rule(
    flag: str, value: str, table: str, key: str, tmp_path: Path
) -> None:
    """``[market] ticks = 0`` used to be accepted while ``--ticks 0`` was refused."""
    done = gridcore(flag, value, cwd=tmp_path)
    assert done.returncode == 2
    flag_message = done.stderr.decode().strip().splitlines()[-1].split(f"argument {flag}: ")[1]
    (tmp_path / "bot.toml").write_text(f"[{table}]\n{key} = {value}\n")
    line = error_line(gridcore("--config", "bot.toml", cwd=tmp_path))
    assert line == f"gridcore: error: bot.toml: {table}.{key}: {flag_message}"


@pytest.mark.parametrize("seed", ["-3", "x"])
def test_run_refuses_the_seeds_backtest_refuses(seed: str, tmp_path: Path) -> None:
    """``run --seed -3`` used to be accepted while ``backtest --seed -1`` was refused."""
    ran = subprocess.run(
        [GRIDCORE, "run", "--journal", "j.db", "--seed", seed, "--duration", "1"],
        capture_output=True,
        cwd=tmp_path,
        env=_ENV,
        timeout=120,
        check=False,
    )
    backtested = gridcore("--seed", seed, cwd=tmp_path)
    assert ran.returncode == backtested.returncode == 2
    last = [d.stderr.decode().strip().splitlines()[-1] for d in (ran, backtested)]
    assert last[0].split("argument --seed: ")[1] == last[1].split("argument --seed: ")[1]
    assert not (tmp_path / "j.db").exists()


def test_an_empty_config_is_the_default_bot(tmp_path: Path) -> None:
    """An empty file used to drop every risk limit; now it runs the documented default."""
    (tmp_path / "empty.toml").write_text("")
    given = run_json("--config", "empty.toml", "--ticks", "3000", cwd=tmp_path)["summary"]
    default = run_json("--ticks", "3000", cwd=tmp_path)["summary"]
    assert given == default


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[venue]\nposition_mode = "hedge"\n', "venue.position_mode"),
        ('[grid]\nposition_side = "long"\n', "grid.position_side"),
        ('[grid]\norder_qty = "0.0015"\n', "grid.order_qty"),
        ('[grid]\norder_notional = "5"\n', "grid.order_notional"),
    ],
)
def test_a_config_that_cannot_trade_is_refused_before_running(
    text: str, field: str, tmp_path: Path
) -> None:
    """These used to run to the end with exit 0 and no trade; ``run`` refuses them too."""
    (tmp_path / "bot.toml").write_text(text)
    line = error_line(gridcore("--config", "bot.toml", cwd=tmp_path))
    assert line.startswith(f"gridcore: error: bot.toml: {field}: ")
    ran = subprocess.run(
        [GRIDCORE, "run", "--journal", "j.db", "--config", "bot.toml", "--duration", "1"],
        capture_output=True,
        cwd=tmp_path,
        env=_ENV,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 2
    assert f"bot.toml: {field}: " in ran.stderr.decode()
    assert not (tmp_path / "j.db").exists()


def test_the_example_runner_has_a_help_and_the_shared_ticks_rule(tmp_path: Path) -> None:
    """``examples/run_backtest.py --help`` used to raise ValueError (``int("--help")``)."""
    script = Path(__file__).resolve().parents[2] / "examples" / "run_backtest.py"
    helped = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, cwd=tmp_path, check=False
    )
    assert helped.returncode == 0, helped.stderr
    assert b"TICKS" in helped.stdout and b"Traceback" not in helped.stderr
    refused = subprocess.run(
        [sys.executable, str(script), "0"], capture_output=True, cwd=tmp_path, check=False
    )
    assert refused.returncode == 2
    assert b"must be at least 1, got 0" in refused.stderr
    assert b"Traceback" not in refused.stderr

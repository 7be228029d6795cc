"""Sample outputs in the docs are the code's real output, never pasted by hand.

A fenced block preceded by ``<!-- sample: NAME -->`` in a page of ``docs/`` is the output of the
command :data:`SAMPLES` gives for NAME, run through the real CLI. The test fails when they
differ; ``python -m tests.e2e.test_doc_samples --write`` rewrites the blocks from the code.
Figures that depend on the machine (wall time, events per second) are kept as written.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"

#: Table rows whose figures depend on the machine's speed: their values are not compared.
VOLATILE_ROWS = ("events per second", "wall time")

_BLOCK = re.compile(
    r"<!-- sample: (?P<name>[a-z0-9-]+) -->\n```(?P<lang>\w*)\n(?P<body>.*?)```", re.S
)


def _cli(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gridcore.shells.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return result.stdout


def _table_lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    masked = []
    for line in lines:
        for row in VOLATILE_ROWS:
            if line.startswith(f"│ {row} "):
                line = line[: line.index("│", 2)] + "│ (machine-dependent) │"
        masked.append(line)
    return masked


def _table_sample(documented: str) -> tuple[str, list[str], list[str]]:
    actual = "gridcore backtest\n" + _cli("backtest").split("\n", 1)[1]
    keep = {
        line.split("│")[1]: line
        for line in documented.splitlines()
        if any(line.startswith(f"│ {row} ") for row in VOLATILE_ROWS)
    }
    rewritten = []
    for line in actual.strip("\n").splitlines():
        line = line.rstrip()
        if line.startswith("│ ") and line.split("│")[1] in keep:
            line = keep[line.split("│")[1]]
        rewritten.append(line)
    return "\n".join(rewritten) + "\n", _table_lines(documented), _table_lines(actual)


def _json_sample(documented: str) -> tuple[str, Any, Any]:
    actual = json.loads(_cli("backtest", "--json"))
    shown = json.loads(documented)
    keys = [k for k in shown["summary"] if k != "..."]
    expected = {
        "summary": {k: actual["summary"][k] for k in keys},
        "violations": actual["violations"],
    }
    got = {"summary": {k: shown["summary"][k] for k in keys}, "violations": shown["violations"]}
    summary: dict[str, Any] = {}
    for key in shown["summary"]:
        summary[key] = "..." if key == "..." else actual["summary"][key]
    text = json.dumps(
        {
            "summary": summary,
            "violations": actual["violations"],
            "performance": shown["performance"],
        },
        indent=2,
    )
    return text + "\n", got, expected


HEDGE_EXAMPLE = DOCS.parent / "examples" / "hedge_grid.toml"


def _hedge_sides_sample(documented: str) -> tuple[str, list[str], list[str]]:
    # The per-side table of the hedge grid's backtest, from its title to its caption.
    lines = _cli("backtest", "--config", str(HEDGE_EXAMPLE)).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("hedge grid per side"))
    end = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("cycles "))
    actual = [line.rstrip() for line in lines[start : end + 1]]
    return "\n".join(actual) + "\n", _table_lines(documented), actual


def _hedge_run_sample(documented: str) -> tuple[str, list[str], list[str]]:
    # The per-side lines under gridcore run's stop line (a paper hour at full speed).
    with tempfile.TemporaryDirectory() as tmp:
        out = _cli(
            "run",
            "--journal",
            str(Path(tmp) / "hedge.db"),
            "--config",
            str(HEDGE_EXAMPLE),
            "--duration",
            "3600",
            "--speed",
            "max",
        )
    actual = [line for line in out.splitlines() if line.startswith(("LONG:", "SHORT:"))]
    return "\n".join(actual) + "\n", documented.strip("\n").splitlines(), actual


def _hedge_legend_sample(documented: str) -> tuple[str, list[str], list[str]]:
    # The legend of the hedge grid's plot: the figure's own legend texts, never pixels.
    from gridcore.config import load_config
    from gridcore.shells.plot import LadderRecorder, trace_figure
    from gridcore.sim import backtest

    ladders = LadderRecorder()
    config = load_config(HEDGE_EXAMPLE.read_text(encoding="utf-8"))
    trace = backtest(config, sample_every=100, reducer=ladders)
    legend = trace_figure(trace, ladders=ladders).axes[0].get_legend()
    assert legend is not None
    actual = [text.get_text() for text in legend.get_texts()]
    return "\n".join(actual) + "\n", documented.strip("\n").splitlines(), actual


#: Sample name -> how to produce it: (rewritten block, documented view, actual view).
SAMPLES: dict[str, Callable[[str], tuple[str, Any, Any]]] = {
    "backtest-table": _table_sample,
    "backtest-json": _json_sample,
    "hedge-grid-sides": _hedge_sides_sample,
    "hedge-grid-run": _hedge_run_sample,
    "hedge-grid-plot-legend": _hedge_legend_sample,
}


def _blocks() -> list[tuple[Path, re.Match[str]]]:
    return [
        (page, m) for page in sorted(DOCS.glob("*.md")) for m in _BLOCK.finditer(page.read_text())
    ]


def test_every_sample_names_a_known_generator() -> None:
    names = [m["name"] for _, m in _blocks()]
    assert set(SAMPLES) <= set(names), "a generator whose sample left the docs"
    assert set(names) <= set(SAMPLES), f"unknown samples: {set(names) - set(SAMPLES)}"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_documented_sample_is_what_the_code_prints(name: str) -> None:
    (page, match) = next((p, m) for p, m in _blocks() if m["name"] == name)
    _, documented, actual = SAMPLES[name](match["body"])
    assert documented == actual, (
        f"{page.name}: sample {name!r} is stale; regenerate it with "
        "`python -m tests.e2e.test_doc_samples --write`"
    )


def write() -> None:
    """Rewrite every sample block from the code's output."""
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()

        def regenerate(m: re.Match[str]) -> str:
            body, _, _ = SAMPLES[m["name"]](m["body"])
            return f"<!-- sample: {m['name']} -->\n```{m['lang']}\n{body}```"

        new = _BLOCK.sub(regenerate, text)
        if new != text:
            page.write_text(new)
            print(f"rewrote {page}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.e2e.test_doc_samples --write")
    write()

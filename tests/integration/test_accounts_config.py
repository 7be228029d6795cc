"""The ``[[accounts]]`` configuration: merged per account, recorded as TOML that reads back
equal, bad entries named at load, secrets only from the environment, the worst exit code."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.config import DEFAULT_TOML
from gridcore.errors import ConfigError
from gridcore.shells.accounts import (
    EXIT_SEVERITY,
    account_secrets,
    accounts_from_options,
    dump_toml,
    has_accounts,
    load_accounts,
    worst_exit,
)

_chars = st.characters(codec="utf-8")
_keys = st.text(alphabet=_chars, min_size=1, max_size=8)
_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(alphabet=_chars, max_size=12),
)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=4))
_tables = st.recursive(
    st.dictionaries(_keys, _values, max_size=4),
    lambda inner: st.dictionaries(_keys, st.one_of(_values, inner), max_size=4),
    max_leaves=12,
)


@given(_tables)
def test_the_recorded_configuration_reads_back_equal(data: dict[str, Any]) -> None:
    assert tomllib.loads(dump_toml(data)) == data


def _text(*entries: str) -> str:
    return DEFAULT_TOML + "".join(f"\n[[accounts]]\n{e}\n" for e in entries)


def test_each_account_gets_the_shared_tables_with_its_own_merged_over_them() -> None:
    specs = load_accounts(
        _text('name = "a"', 'name = "b"\njournal = "x/b.db"\nfaults = "chaos"\n'
              '[accounts.grid]\nlevels = 3'),
        source="bots.toml",
        journal_dir="runs",
    )  # fmt: skip
    a, b = specs
    assert (a.name, a.journal, a.faults) == ("a", Path("runs/a.db"), None)
    assert (b.name, b.journal, b.faults) == ("b", Path("runs/x/b.db"), "chaos")
    assert a.config.grid.levels == 5 and b.config.grid.levels == 3
    assert a.config.grid.spacing == b.config.grid.spacing  # the rest of [grid] is shared
    assert "accounts" not in tomllib.loads(b.text)
    assert has_accounts(_text('name = "a"')) and not has_accounts(DEFAULT_TOML)


@pytest.mark.parametrize(
    ("text", "journal_dir", "field"),
    [
        (DEFAULT_TOML + "\naccounts = 3\n", "runs", "accounts"),
        (_text("faults = 1"), "runs", "accounts[0].name"),
        (_text('name = "9lives"'), "runs", "accounts[0].name"),
        (_text('name = "a"', 'name = "a"'), "runs", "accounts[1].name"),
        (_text('name = "a"'), None, "accounts[0] (a).journal"),
        (_text('name = "a"\njournal = "j.db"', 'name = "b"\njournal = "j.db"'), None,
         "accounts[1] (b).journal"),
        (_text('name = "a"\nlevels = 2'), "runs", "accounts[0] (a).levels"),
        (_text('name = "a"\nfaults = 2'), "runs", "accounts[0] (a).faults"),
        (_text('name = "a"\n[accounts.venue]\napi_secret = "s3cr3t"'), "runs",
         "accounts[0] (a).venue.api_secret"),
        (_text('name = "a"\n[accounts.grid]\nlevels = 0'), "runs", "grid.levels"),
    ],
)  # fmt: skip
def test_a_bad_entry_is_refused_naming_its_field(
    text: str, journal_dir: str | None, field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_accounts(text, source="bots.toml", journal_dir=journal_dir)
    assert field in str(info.value)
    assert "s3cr3t" not in str(info.value)


def test_a_secret_in_the_shared_tables_is_refused_too() -> None:
    text = _text('name = "a"').replace("[venue]\n", '[venue]\napi_key = "k"\n', 1)
    with pytest.raises(ConfigError, match=r"venue\.api_key.*environment"):
        load_accounts(text, source="bots.toml", journal_dir="runs")


def test_secrets_come_from_the_account_s_environment_variables() -> None:
    env = {
        "GRIDCORE_ALICE_API_KEY": "ka",
        "GRIDCORE_ALICE_SECRET": "sa",
        "GRIDCORE_ALICEB_API_KEY": "other",
        "GRIDCORE_BOB_API_KEY": "kb",
        "GRIDCORE_ALICE_EMPTY": "",
    }
    assert account_secrets("alice", env) == {"api_key": "ka", "secret": "sa"}
    assert account_secrets("bob", env) == {"api_key": "kb"}
    assert account_secrets("carol", env) == {}


@given(st.lists(st.sampled_from(EXIT_SEVERITY), min_size=1))
def test_the_process_exits_with_the_worst_account(codes: list[int]) -> None:
    worst = worst_exit(codes)
    assert worst in codes
    assert all(EXIT_SEVERITY.index(worst) <= EXIT_SEVERITY.index(c) for c in codes)


def test_command_line_accounts_read_like_the_same_entries_in_the_file(tmp_path: Path) -> None:
    over = tmp_path / "b.toml"
    over.write_text('journal = "bee.db"\nfaults = "chaos"\n[grid]\nlevels = 3\n')
    text = accounts_from_options(DEFAULT_TOML, ["a", f"b={over}"], source="base.toml")
    from_options = load_accounts(text, source="base.toml", journal_dir="runs")
    in_file = load_accounts(
        _text('name = "a"', 'name = "b"\njournal = "bee.db"\nfaults = "chaos"\n'
              "[accounts.grid]\nlevels = 3"),
        source="base.toml",
        journal_dir="runs",
    )  # fmt: skip
    assert [(s.name, s.journal, s.faults, s.config) for s in from_options] == [
        (s.name, s.journal, s.faults, s.config) for s in in_file
    ]
    with pytest.raises(ConfigError, match="use one of them"):
        accounts_from_options(_text('name = "a"'), ["b"], source="base.toml")
    named = tmp_path / "n.toml"
    named.write_text('name = "zed"\n')
    with pytest.raises(ConfigError, match=r"--account b=.*name"):
        accounts_from_options(DEFAULT_TOML, [f"b={named}"], source="base.toml")


@pytest.mark.parametrize(
    ("extra_args", "entry", "text"),
    [
        (("--journal", "j.db"), 'name = "a"', "each account has its own journal"),
        (
            ("--metrics-port", "65535"),
            'name = "a"\n[[accounts]]\nname = "b"',
            "2 accounts need ports up to 65535",
        ),
        ((), 'name = "a"\nfaults = "nope"', "account a: faults: "),
        ((), 'name = "a"\njournal = "sub/a.db"', "directory runs/sub does not exist"),
    ],
)
def test_a_several_accounts_run_refused_before_anything_is_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra_args: tuple[str, ...],
    entry: str,
    text: str,
) -> None:
    from gridcore.shells.cli_run import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "bots.toml").write_text(_text(entry))
    args = ["run", "--config", "bots.toml", "--journal-dir", "runs", *extra_args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("gridcore: error: ") and text in err, err
    assert list((tmp_path / "runs").iterdir()) == []
    assert main(["run", "--config", "bots.toml", "--journal-dir", "missing"]) == 2
    assert "--journal-dir missing: not a directory" in capsys.readouterr().err

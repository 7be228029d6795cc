"""The ``gridcore`` command line: one entry point, one module per group of subcommands.

``gridcore init`` lives here: it writes the shipped default configuration (package data,
``gridcore/configs/<strategy>.toml``, the same text as the embedded default) to a file the user
can edit, so an installed user has the documented starting point without the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import gridcore
from gridcore import registry
from gridcore.config import strategy_toml
from gridcore.errors import ConfigError
from gridcore.shells import cli_backtest, cli_run, cli_sweep, strategies
from gridcore.shells.redact import redact
from gridcore.shells.venues.hyperliquid import cli as hl_cli

__all__ = ["EXAMPLES", "STRATEGIES", "build_parser", "default_config_text", "example_text", "main"]

#: Strategies shipped with a configuration file of their own (``gridcore/configs/<name>.toml``).
#: ``gridcore init --strategy`` also writes one for any other registered kind
#: (:mod:`gridcore.registry`), generated from its defaults.
STRATEGIES = ("grid",)
_EXIT_USAGE = 2
#: An unexpected exception: a bug in gridcore, a strategy or an adapter (``sysexits`` EX_SOFTWARE).
EXIT_BUG = 70


def default_config_text(strategy: str = "grid", *, module: str | None = None) -> str:
    """The default configuration of ``strategy``, as ``gridcore init`` writes it: the shipped
    file for a shipped strategy, else generated from the registered kind's defaults (``module``
    or the ``gridcore.strategies`` entry point named ``strategy`` is imported to register it).
    Raises ``ValueError`` naming the registered kinds for an unknown one."""
    if strategy in STRATEGIES and module is None:
        ref = resources.files("gridcore").joinpath("configs", f"{strategy}.toml")
        return ref.read_text(encoding="utf-8")
    try:
        if module is not None:
            strategies.import_module(module)
        elif strategy not in registry.kinds():
            strategies.import_strategy(f"[strategy]\nkind = {json.dumps(strategy)}\n")
        return strategy_toml(strategy, module=module)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


#: Examples ``gridcore init --example NAME`` writes (package data, ``gridcore/configs/``): the
#: files the documentation points at, for a user who installed gridcore without the repository.
EXAMPLES = {"prove-my-bot": "prove_my_bot.py", "write-a-strategy": "write_a_strategy.py"}
#: What to do with a written example ({path} is where it was written).
_NEXT = {
    "prove-my-bot": "run: python -m pytest {path}  (needs: pip install 'gridcore[testing]')",
    "write-a-strategy": "it registers strategy kind mean_reversion; with its directory on "
    "PYTHONPATH, run: gridcore init --strategy mean_reversion --module write_a_strategy, then "
    "gridcore backtest --config mean_reversion.toml",
}


def example_text(name: str) -> str:
    """The shipped example ``name`` (see :data:`EXAMPLES`), as ``gridcore init`` writes it."""
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; known: {', '.join(EXAMPLES)}")
    return resources.files("gridcore").joinpath("configs", EXAMPLES[name]).read_text("utf-8")


def _error(message: str) -> int:
    sys.stderr.write(f"gridcore: error: {message}\n")
    return _EXIT_USAGE


def cmd_init(args: argparse.Namespace) -> int:
    """``gridcore init``: write the commented default configuration; never clobber a file
    unless ``--force``."""
    if args.example is not None:
        text, what = example_text(args.example), f"the {args.example} example"
        default_path = EXAMPLES[args.example]
        then = _NEXT[args.example]
    else:
        try:
            text = default_config_text(args.strategy, module=args.module)
        except ValueError as exc:
            return _error(f"--strategy: {exc}")
        what = f"the default {args.strategy} configuration"
        default_path = f"{args.strategy}.toml"
        then = "edit it, then run: gridcore backtest --config {path}"
    if args.path == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.path or default_path)
    if path.is_dir():
        return _error(f"{path}: is a directory; give a file name, for example {path / 'grid.toml'}")
    if not path.parent.is_dir():
        return _error(f"{path}: directory {str(path.parent)!r} does not exist")
    try:
        # "x" refuses an existing file atomically: no window between the check and the write.
        with path.open("w" if args.force else "x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        return _error(f"{path}: already exists; use --force to overwrite it, or give another path")
    except OSError as exc:
        return _error(f"{path}: cannot write: {exc.strerror or exc}")
    sys.stderr.write(f"gridcore: wrote {what} to {path}; {then.format(path=path)}\n")
    return 0


def _register_init(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "init",
        help="write the default configuration, every setting commented, to a file to edit",
        description="Write the shipped default configuration (what gridcore runs when no "
        "--config is given), every key with its default and a comment. An existing file is "
        "never overwritten unless --force is given.",
    )
    p.add_argument(
        "path",
        nargs="?",
        default=None,
        metavar="PATH",
        help="file to write (default: grid.toml, or the example's own name; '-' prints it on "
        "stdout)",
    )
    p.add_argument(
        "--example",
        choices=sorted(EXAMPLES),
        default=None,
        help="write a runnable example instead of a configuration: prove-my-bot is a small "
        "strategy and its property-based proof with gridcore.testing; write-a-strategy a "
        "strategy kind of your own, registered for the configuration to name",
    )
    p.add_argument(
        "--strategy",
        default="grid",
        metavar="KIND",
        help="which registered strategy kind to configure (default: grid, the neutral grid; "
        "a kind of your own is found through --module or its package's gridcore.strategies "
        "entry point)",
    )
    p.add_argument(
        "--module",
        default=None,
        metavar="MODULE",
        help="import this module (a dotted name, for example mypkg.mybot) to register "
        "--strategy KIND; the configuration written names it in [strategy] module",
    )
    p.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    p.set_defaults(handler=cmd_init)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="gridcore",
        description="Grid and funding-arbitrage bots on a pure, property-tested core. "
        "Start with 'gridcore backtest', or 'gridcore init' to get a configuration to edit.",
    )
    parser.add_argument("--version", action="version", version=f"gridcore {gridcore.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_init(sub)
    cli_backtest.register(sub)
    cli_run.register(sub)
    cli_sweep.register(sub)
    hl_cli.register_fake_venue(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except Exception:
        # A bug, not a user error: the whole traceback, but never a secret that an adapter's
        # message or a URL carried (the handlers already redact what they journal or print).
        sys.stderr.write(redact(traceback.format_exc()))
        print("gridcore: internal error (the traceback above); please report it", file=sys.stderr)
        return EXIT_BUG
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

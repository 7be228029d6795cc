"""The command line for Hyperliquid: ``gridcore run --venue hyperliquid-fake | hyperliquid`` and
``gridcore fake-venue hyperliquid``.

* ``gridcore run --venue hyperliquid-fake --journal J`` runs the whole stack (journal, core,
  runtime, adapter over real loopback sockets) against an in-process fake with a throwaway key:
  a demo that needs no account. The fake's book lives only in the process.
* ``gridcore run --venue hyperliquid --live [--testnet] --journal J`` trades a real account. The
  key comes only from the environment (``GRIDCORE_HL_PRIVATE_KEY``; ``GRIDCORE_HL_ACCOUNT`` when
  it is an API wallet's), is never printed, logged nor journaled, and mainnet also needs
  ``--confirm-mainnet``.
* ``gridcore fake-venue hyperliquid --port N [--balance USDC] [--account ADDR]`` serves the fake
  standalone until interrupted (point the official SDK or ``--venue`` tools at it).

The runtime runs on trio here (the adapter's WebSocket client is trio-websocket). The venue's
dependencies load only when one of these commands runs (``gridcore[hyperliquid]``, and
``gridcore[hyperliquid-fake]`` for the fake).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

__all__ = ["ACCOUNT_ENV", "DEMO_TOML", "KEY_ENV", "register_fake_venue", "run_hyperliquid"]

KEY_ENV = "GRIDCORE_HL_PRIVATE_KEY"
ACCOUNT_ENV = "GRIDCORE_HL_ACCOUNT"
VENUES = ("sim", "hyperliquid-fake", "hyperliquid")

#: The configuration a new ``--venue hyperliquid-fake`` journal gets without ``--config``:
#: a small neutral grid on ETH. ``tick_size`` is the price step the venue accepts at ETH's
#: price (5 significant figures: 0.1 between 1,000 and 10,000), not the finest step.
DEMO_TOML = """\
# gridcore: a neutral grid on Hyperliquid's ETH perp (the loopback fake, or a live account).
[venue]
name = "hyperliquid"
leverage = "10"
position_mode = "one_way"

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
max_drawdown = "500"

[market]
start_price = "3200"
"""


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    """``--venue``, ``--testnet`` and ``--confirm-mainnet`` for ``gridcore run``."""
    run.add_argument(
        "--venue",
        choices=VENUES,
        default="sim",
        help="sim (default): the simulated venue; hyperliquid-fake: Hyperliquid's loopback fake "
        "in-process (a demo, no account); hyperliquid: a real account (with --live)",
    )
    run.add_argument("--testnet", action="store_true", help="--venue hyperliquid: the testnet")
    run.add_argument(
        "--venue-url",
        metavar="URL",
        help="--venue hyperliquid: another base URL (for example a 'gridcore fake-venue "
        "hyperliquid'); signed for the testnet with --testnet",
    )
    run.add_argument(
        "--confirm-mainnet",
        action="store_true",
        help="--venue hyperliquid --live without --testnet: confirm trading real money",
    )


def register_fake_venue(subparsers: Any) -> None:
    """``gridcore fake-venue hyperliquid``."""
    fake = subparsers.add_parser(
        "fake-venue",
        help="serve a loopback fake of a venue (tests, demos)",
        description="Serve a fake of a venue's wire protocol on 127.0.0.1 until interrupted.",
    )
    fake.add_argument("venue", choices=("hyperliquid",), help="which venue to fake")
    fake.add_argument("--port", type=int, default=0, metavar="N", help="port (0: any free one)")
    fake.add_argument(
        "--balance", default="100000", metavar="USDC", help="the account's starting balance"
    )
    fake.add_argument(
        "--account",
        metavar="ADDR",
        help="the funded account's address (default: the official SDK's throwaway test key's)",
    )
    fake.add_argument(
        "--mainnet-signatures",
        action="store_true",
        help="verify signatures with the mainnet source (default: testnet, as a client pointed "
        "at a non-mainnet URL signs)",
    )
    fake.set_defaults(handler=_cmd_fake_venue)


def _usage(message: str) -> int:
    print(f"gridcore: error: {message}", file=sys.stderr)
    return 2


def _cmd_fake_venue(args: argparse.Namespace) -> int:
    try:
        from gridcore.shells.venues.hyperliquid.fake import HyperliquidFake
        from gridcore.shells.venues.hyperliquid.signing import address_of
    except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
        return _usage(f"the fake needs: pip install 'gridcore[hyperliquid-fake]' ({exc})")
    try:
        balance = Decimal(args.balance)
        if not balance.is_finite() or balance < 0:
            raise InvalidOperation
    except InvalidOperation:
        return _usage(f"--balance {args.balance!r}: a non-negative number of USDC")
    account = args.account or address_of("0x" + "0123456789" * 6 + "0123")
    if not (account.startswith("0x") and len(account) == 42):
        return _usage(f"--account {account!r}: a 0x-prefixed 20-byte address")
    if not 0 <= args.port < 65536:
        return _usage(f"--port {args.port}: 0 to 65535")
    fake = HyperliquidFake(
        account=account, balance=balance, port=args.port, mainnet=args.mainnet_signatures
    )
    print(
        f"gridcore: Hyperliquid fake for {account} with {balance} USDC on 127.0.0.1 "
        f"(port {args.port or 'any'}); Ctrl-C stops it",
        file=sys.stderr,
        flush=True,
    )
    # Ctrl-C stops it even when started with SIGINT ignored (a background job of a
    # non-interactive shell inherits that, and Python then never raises KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    fake.start()
    print(f"serving {fake.url} (ws://127.0.0.1:{fake.port}/ws)", flush=True)
    try:
        while True:
            import time

            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


def run_hyperliquid(args: argparse.Namespace) -> int:
    """``gridcore run --venue hyperliquid-fake | hyperliquid``."""
    from gridcore.shells import cli_run

    if args.venue == "hyperliquid" and not args.live:
        raise cli_run.CliError(
            "--venue hyperliquid trades a real account: add --live (and --testnet, or "
            "--confirm-mainnet for real money); --venue hyperliquid-fake is the demo"
        )
    if args.venue == "hyperliquid-fake" and args.live:
        raise cli_run.CliError("--venue hyperliquid-fake is a demo: drop --live")
    if args.venue == "hyperliquid" and not args.testnet and not args.confirm_mainnet:
        raise cli_run.CliError(
            "--venue hyperliquid --live without --testnet trades real money on mainnet: add "
            "--confirm-mainnet to confirm, or --testnet"
        )
    if args.faults is not None:
        raise cli_run.CliError("--faults applies to the simulated venue only")
    if getattr(args, "journal_dir", None) is not None or args.journal is None:
        raise cli_run.CliError(f"--venue {args.venue} runs one bot: give --journal PATH")
    key = None
    if args.venue == "hyperliquid":
        key = os.environ.get(KEY_ENV, "")
        if not key:
            raise cli_run.CliError(
                f"--venue hyperliquid: set the signing key in the environment variable {KEY_ENV} "
                f"(and {ACCOUNT_ENV} to the account's address when it is an API wallet's); keys "
                f"are never read from the command line or a file"
            )
    try:
        import eth_account  # noqa: F401

        from gridcore.shells.venues.hyperliquid import adapter as _adapter  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
        raise cli_run.CliError(
            f"--venue {args.venue} needs: pip install 'gridcore[hyperliquid-fake]' ({exc})"
        ) from None
    path = Path(args.journal)
    if path.parent and not path.parent.exists():
        raise cli_run.CliError(f"--journal {path}: directory {path.parent} does not exist")
    from gridcore.shells import logs
    from gridcore.shells.journal import WriterLock

    close_log = logs.configure(
        level=logs.level_for(verbose=args.verbose, quiet=args.quiet),
        json_lines=args.log_json,
        path=args.log_file,
        stream=sys.stderr if args.log_json and args.log_file is None else None,
    )
    try:
        lock = WriterLock.acquire(path)
        try:
            return _run_locked(args, path, lock, key)
        finally:
            lock.release()
    finally:
        close_log()


def _run_locked(args: argparse.Namespace, path: Path, lock: Any, key: str | None) -> int:
    from gridcore.shells import cli_run
    from gridcore.shells.journal import Journal, is_new, recover
    from gridcore.shells.strategies import load_config
    from gridcore.sim import make_bot

    new = is_new(path)
    journal: Journal | None = None
    if new:
        lock.check_new()
        if args.config is None:
            text, config = DEMO_TOML, load_config(DEMO_TOML, source="the Hyperliquid demo")
        else:
            text, config = cli_run._read_config(args.config)
    else:
        journal = Journal.open(path, lock=lock)
        meta = journal.meta()
        if meta.get("venue") != args.venue:
            journal.close()
            raise cli_run.CliError(
                f"{path} was started on --venue {meta.get('venue')}, not {args.venue}"
            )
        text = meta.get("config", "")
        config = load_config(text, source=f"{path} (recorded configuration)")
    if config.venue.name != "hyperliquid":
        if journal is not None:
            journal.close()
        raise cli_run.CliError(
            f"--venue {args.venue}: the configuration's [venue] name is {config.venue.name!r}; "
            f'it must be "hyperliquid" (the adapter\'s name)'
        )
    adapter, fake = _open_venue(args, config, key, path.parent)
    try:
        # Before anything is written: a configuration the venue would refuse stops here.
        import anyio

        anyio.run(_preflight, adapter, config, backend="trio")
        if new:
            import time

            nonce = int.from_bytes(os.urandom(8), "big")
            state = make_bot(config, epoch=time.time_ns() // 1_000_000, nonce=nonce)
            journal = Journal.create(
                path,
                state=state,
                meta={"config": text, "venue": args.venue, "session_nonce": f"{nonce:016x}"},
                lock=lock,
            )
            print(f"gridcore: new journal {path} (--venue {args.venue})", file=sys.stderr)
        else:
            assert journal is not None
            state, seq = recover(journal)
            adapter.resume_fills_from(state.now)
            print(f"gridcore: resuming journal {path} at event {seq}", file=sys.stderr)
        return _session(args, state, journal, adapter)
    finally:
        adapter.nonces.close()
        if fake is not None:
            fake.stop()
        if journal is not None:
            journal.close()


def _open_venue(
    args: argparse.Namespace, config: Any, key: str | None, directory: Path
) -> tuple[Any, Any]:
    """The adapter (and, for the demo, the fake it trades on, started)."""
    import eth_account

    from gridcore.shells.runtime import WallClock
    from gridcore.shells.venues.hyperliquid.adapter import (
        MAINNET_URL,
        TESTNET_URL,
        HyperliquidAdapter,
    )
    from gridcore.shells.venues.hyperliquid.nonces import NonceAllocator, nonce_path
    from gridcore.shells.venues.hyperliquid.signing import address_of

    fake: Any = None
    if key is None:  # the demo: a throwaway key, a fake funded for it
        from gridcore.shells.venues.hyperliquid.fake import CoinSpec, HyperliquidFake

        key = eth_account.Account.create().key.hex()
        key = key if key.startswith("0x") else "0x" + key
        coin = config.instrument.symbol
        sz = max(0, -config.instrument.lot_size.normalize().as_tuple().exponent)
        fake = HyperliquidFake(
            account=address_of(key),
            balance=Decimal(config.venue.starting_balance),
            coins=(CoinSpec(coin, sz, Decimal(config.market.start_price)),),
        ).start()
        base_url, mainnet, account = fake.url, False, None
    else:
        base_url = args.venue_url or (TESTNET_URL if args.testnet else MAINNET_URL)
        mainnet = not args.testnet
        account = os.environ.get(ACCOUNT_ENV) or None
    clock = WallClock()
    dead_man = config.venue.dead_man_seconds
    signer = address_of(key)
    try:
        nonces = NonceAllocator(signer=signer, now_ms=clock.now, path=nonce_path(directory, signer))
    except ValueError as exc:
        if fake is not None:
            fake.stop()
        from gridcore.shells import cli_run

        raise cli_run.CliError(str(exc)) from None
    adapter = HyperliquidAdapter(
        base_url=base_url,
        private_key=key,
        mainnet=mainnet,
        coins=(config.instrument.symbol,),
        clock=clock,
        nonces=nonces,
        account=account,
        dead_man_ms=None if dead_man is None else dead_man * 1000,
    )
    return adapter, fake


async def _preflight(adapter: Any, config: Any) -> None:
    """The venue lists the coin, and the configured instrument fits its rules at today's price."""
    from gridcore.shells import cli_run
    from gridcore.shells.venue import TransportError, VenueError

    try:
        await adapter.connect()
        price = await adapter.mid(config.instrument.symbol)
    except (VenueError, TransportError) as exc:
        raise cli_run.CliError(f"cannot reach the venue: {exc}") from None
    finally:
        await adapter.close()
    problems = adapter.instrument_problems(config.make_instrument(), price)
    if problems:
        raise cli_run.CliError("the configuration does not fit the venue: " + "; ".join(problems))


def _session(args: argparse.Namespace, state: Any, journal: Any, adapter: Any) -> int:
    import anyio

    from gridcore.shells import cli_run
    from gridcore.shells.runtime import Runtime, RuntimeOptions

    log = logging.getLogger("gridcore.run")
    notices = cli_run._Notices(verbose=args.verbose, quiet=args.quiet)
    runtime = Runtime(
        state=state,
        journal=journal,
        venues=[adapter],
        clock=adapter.clock,
        options=RuntimeOptions(
            cancel_on_exit=args.cancel_on_exit, snapshot_every=args.snapshot_every
        ),
        on_notice=notices,
    )
    duration_ms = None if args.duration is None else int(args.duration * 1000)

    late = False  # a signal cut short only what follows the final snapshot

    async def session() -> None:
        nonlocal late
        await adapter.connect()
        try:
            try:
                await runtime.run(duration_ms=duration_ms)
            except KeyboardInterrupt:
                # The runtime hands the signals back for an instant after its final snapshot:
                # a signal landing there ends nothing that matters, and the switch below must
                # still be cleared (signals are ignored again from here).
                if not runtime.finished:
                    raise
                late = True
            if adapter.dead_man_ms is not None:
                # A clean stop: what rests now is the operator's choice (--cancel-on-exit or
                # not), so the venue must not cancel it behind their back. A crash never
                # gets here, and the armed switch then cancels the dead bot's orders.
                await adapter.disarm_dead_man()
        finally:
            await adapter.close()

    interrupted = False
    try:
        anyio.run(session, backend="trio")
    except* KeyboardInterrupt:  # bare, or inside the adapter's task groups' exception group
        runtime.shutdown_signals.install()  # nothing more may cut the journal's closing
        interrupted = True
    if interrupted:
        print("gridcore: interrupted; the journal is intact, run again to resume", file=sys.stderr)
        return cli_run.EXIT_INTERRUPTED
    final = runtime.state
    log.info("stop (%s): %d events this run", runtime.stats.stop_reason, runtime.stats.events)
    print(
        f"stopped ({runtime.stats.stop_reason}): {runtime.stats.events} events this run, "
        f"journal at event {journal.last_seq}; net PnL {cli_run._money(final.net_pnl(), final)}; "
        f"fills {final.ledger.fill_count}"
    )
    if runtime.stats.signals > 1 or late:
        print(
            "gridcore: interrupted during shutdown: outstanding orders were not awaited; the "
            "journal is saved, run again to resume (it reconciles with the venue)",
            file=sys.stderr,
        )
        return cli_run.EXIT_INTERRUPTED
    return 0

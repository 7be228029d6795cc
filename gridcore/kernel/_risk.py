"""Risk: the gate call, the reservations, the breakers and the halt policy.

Rules
-----
* **The gate** (:func:`gridcore.risk.check_order`, its checks documented there and in
  ``docs/risk.md``) is called by :func:`gate` for every ``Submit`` and every modify that
  increases a size, in the same step that reserves the order's margin (no check-then-act
  window: failures `stale-balance`, `shared-mutable-state`). A refusal becomes a notice (not
  repeated while the reason is the same, :func:`refuse`); a ``stale_balance`` refusal asks for
  balances, a ``no_quote`` or ``stale_quote`` one awaits the instrument's next quote the gate
  would price from (both then tell the strategy ``on_ready``: :mod:`gridcore.kernel._requests`).
  Reservations are released on every terminal status (:func:`release`).
* **Breakers** (each halts only if :func:`may_halt`: not halted, or halted for a cause a restart
  would lift):

  - drawdown (:func:`check_drawdown`): per settlement currency, the peak of net PnL and the
    worst fall from it; a fall reaching ``max_drawdown`` halts (cause ``drawdown``);
  - error streak (:func:`error` / :func:`ok`): ``max_error_streak`` failed order or request
    commands in a row halt (cause ``error_streak``); each order of a failed batch counts, so
    batching never changes when it trips;
  - margin (:func:`on_balance`): equity below what open orders reserve halts (cause ``margin``).

* **Halt policy** (:data:`gridcore.halts.POLICIES`, applied by :func:`halt` and :func:`resume`):
  a halt records its cause (a stricter later cause replaces it), emits ``Halt`` and a notice, and
  cancels only the orders that could add exposure (:func:`cancel_all`: reduce-only orders,
  hedge-mode closes and one-way orders offsetting a held position stay, see
  :mod:`gridcore.exposure`) — except for causes whose policy cancels every order. A resume lifts
  the halt, resets the error streak, re-arms the drawdown baseline when the policy says so, and
  reconciles every venue before strategies trade again.
* **Flatten** halts (cause ``flatten``) and closes exactly the ledger's base quantity of every
  position, reduce-only IOC at the slippage cap (failure `rollback-in-quote`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gridcore.commands import Halt, Level, Notify
from gridcore.events import BalanceReported
from gridcore.exposure import asset_of, closes_exposure, offsetting_orders
from gridcore.halts import POLICIES, HaltCause, stricter
from gridcore.instruments import Instrument, PositionSide, Side, TimeInForce
from gridcore.kernel import _orders, _sync
from gridcore.kernel._model import Submit, pnl_by_currency, replace
from gridcore.kernel._tx import Tx
from gridcore.lifecycle import Order, OrderStatus
from gridcore.numbers import CTX, ZERO, Rounding, format_money
from gridcore.risk import Refusal, RiskState, check_order


def gate(
    tx: Tx[Any],
    instrument: Instrument,
    *,
    side: Side,
    qty: Decimal,
    price: Decimal,
    tif: TimeInForce,
    reduce_only: bool,
    position_side: PositionSide = PositionSide.BOTH,
) -> Decimal | Refusal:
    """The risk gate (:func:`gridcore.risk.check_order`) on the step's current books: the margin
    to reserve, or why the order is refused."""
    return check_order(
        config=tx.config.risk,
        risk=tx.risk,
        ledger=tx.ledger,
        orders=tx.orders.values(),
        quotes=tx.quotes,
        instrument=instrument,
        side=side,
        qty=qty,
        price=price,
        tif=tif,
        reduce_only=reduce_only,
        now=tx.now,
        position_side=position_side,
        quotes_before=tx.venue(instrument.venue).quotes_before,
    )


def reserve(tx: Tx[Any], venue: str, amount: Decimal) -> None:
    """Hold ``amount`` of ``venue``'s margin for an order the gate let through."""
    if amount:
        reserved = dict(tx.risk.reserved)
        reserved[venue] = CTX.add(reserved.get(venue, ZERO), amount)
        tx.risk = replace(tx.risk, reserved=reserved)


def count_order(tx: Tx[Any]) -> None:
    """An order left the core: count it in the rate window; a later refusal is news again."""
    window_start = tx.now - tx.config.risk.velocity_window_ms
    recent = (*tuple(t for t in tx.risk.recent_orders if t > window_start), tx.now)
    tx.risk = replace(tx.risk, recent_orders=recent, last_refusal="")


def release(tx: Tx[Any], venue: str, amount: Decimal) -> None:
    """Give back margin held for an order (on a terminal status, or a failed modify)."""
    reserved = dict(tx.risk.reserved)
    left = CTX.subtract(reserved.get(venue, ZERO), amount)
    reserved[venue] = left if left > 0 else ZERO
    tx.risk = replace(tx.risk, reserved=reserved)


def check_drawdown(tx: Tx[Any]) -> None:
    """Track, per settlement currency, the peak of net PnL and the worst fall from it; halt
    when the fall in any one currency reaches ``max_drawdown`` (in that currency: amounts
    in different currencies are never added)."""
    limit = tx.config.risk.max_drawdown
    primary = tx.config.currencies[0] if tx.config.currencies else ""
    for currency, pnl in pnl_by_currency(tx.ledger, tx.quotes, tx.config).items():
        tx.risk, fall = note_pnl(tx.risk, currency, pnl, primary)
        if fall is None:
            continue
        if limit is not None and fall >= limit and may_halt(tx):
            halt(
                tx,
                HaltCause.DRAWDOWN,
                f"drawdown {format_money(fall, currency)} {currency} reached max_drawdown "
                f"{format_money(limit, currency)} {currency}",
            )


def note_pnl(
    risk: RiskState, currency: str, pnl: Decimal, primary: str
) -> tuple[RiskState, Decimal | None]:
    """``risk`` with the peak and worst fall of ``currency`` updated by ``pnl``, and the fall
    from the peak (``None`` at a new peak). Pure, so that the housekeeping fast path of
    :func:`gridcore.kernel._reducer.step` measures exactly as :func:`check_drawdown` does."""
    peak = risk.peaks.get(currency)
    if peak is None:  # a state saved before currencies kept only the first one's
        peak = risk.peak_pnl if currency == primary else ZERO
    if pnl > peak:
        return replace(
            risk,
            peaks={**risk.peaks, currency: pnl},
            peak_pnl=pnl if currency == primary else risk.peak_pnl,
        ), None
    fall = CTX.subtract(peak, pnl)
    worst = risk.drawdowns.get(currency)
    if worst is None:
        worst = risk.worst_drawdown if currency == primary else ZERO
    if fall > worst:
        risk = replace(
            risk,
            drawdowns={**risk.drawdowns, currency: fall},
            worst_drawdown=fall if currency == primary else risk.worst_drawdown,
        )
    return risk, fall


def error(tx: Tx[Any], what: str) -> None:
    # One per failed order/request command, batched or not: how a shell groups orders into
    # requests must not change when the breaker trips.
    """Count one failed order or request command; halt at ``max_error_streak`` in a row."""
    streak = tx.risk.error_streak + 1
    tx.risk = replace(tx.risk, error_streak=streak)
    if streak >= tx.config.risk.max_error_streak and may_halt(tx):
        halt(tx, HaltCause.ERROR_STREAK, f"{streak} errors in a row (last: {what})")


def ok(tx: Tx[Any]) -> None:
    """A command succeeded: the error streak starts again."""
    if tx.risk.error_streak:
        tx.risk = replace(tx.risk, error_streak=0)


def may_halt(tx: Tx[Any]) -> bool:
    """True when a breaker that trips now must halt: trading is not halted, or is halted
    for a cause a restart would lift (the stricter cause then replaces it)."""
    return not tx.risk.halted or tx.risk.resumes_on_restart


def halt(tx: Tx[Any], cause: HaltCause, reason: str) -> None:
    """Stop adding exposure (see :mod:`gridcore.halts`): record why, cancel the orders that
    could add exposure, keep the ones that close or offset it."""
    risk = tx.risk
    if risk.halted:
        current = risk.halt_cause
        if current is not None and current is not cause and stricter(current, cause):
            tx.risk = replace(risk, halt_cause=cause, halt_reason=reason)
            tx.notify(Level.ALERT, "halted", f"still halted, now for: {reason}")
        if POLICIES[cause].cancels_every_order:
            cancel_all(tx, every=True)
        return
    tx.risk = replace(risk, halted=True, halt_reason=reason, halt_cause=cause)
    every = POLICIES[cause].cancels_every_order
    tx.commands.append(Halt(command_id=tx.next_id(), reason=reason))
    # The notice is named and placed before the cancels, and says what they left.
    notice_id, at = tx.next_id(), len(tx.commands)
    kept = cancel_all(tx, every=every)
    text = f"trading halted: {reason}; open orders canceled"
    if kept:
        text += f" except {kept} that close or offset exposure"
    tx.commands.insert(
        at, Notify(command_id=notice_id, level=Level.ALERT, code="halted", message=text)
    )


def cancel_all(tx: Tx[Any], *, every: bool = False) -> int:
    """Cancel every live order that could add exposure (``every``: every live order), and
    say how many live orders were kept. Closing orders (reduce-only, or a hedge-mode close)
    and orders that offset a held position (a hedge leg) stay: canceling them would leave
    more risk, not less (:mod:`gridcore.exposure`)."""
    adding: list[Order] = []
    kept = 0
    for cloid in tx.live:
        order = tx.orders[cloid]
        if order.status is OrderStatus.PENDING_CANCEL:
            continue
        if every or not closes_exposure(order.side, order.position_side, order.reduce_only):
            adding.append(order)
        else:
            kept += 1
    if every or not adding:
        for order in adding:
            _orders.cancel(tx, order.cloid)
        return kept
    keep = _offsetting(tx, adding)
    for order in adding:
        if order.cloid not in keep:
            _orders.cancel(tx, order.cloid)
    return kept + len(keep)


def _offsetting(tx: Tx[Any], orders: list[Order]) -> frozenset[str]:
    """The cloids among ``orders`` that offset a held position (:mod:`gridcore.exposure`)."""
    assets = {key: asset_of(i) for key, i in tx.config.by_key.items()}
    holdings: dict[str, Decimal] = {}
    for (venue, symbol, _side), pos in tx.ledger.positions.items():
        asset = assets.get((venue, symbol))
        if asset is not None and pos.qty:
            holdings[asset] = CTX.add(holdings.get(asset, ZERO), pos.qty)
    return offsetting_orders(
        (
            (o.cloid, (o.venue, o.symbol), o.side, o.remaining)
            for o in orders
            if o.position_side is PositionSide.BOTH
        ),
        holdings,
        assets,
    )


def hold_halt(tx: Tx[Any], cloid: str, *, acked: bool = False) -> None:
    """A halt outlives the cancels it sent: an order the core learns rests while trading is
    halted (its cancel raced the placement and was refused as "never placed", or its outcome
    was in doubt) is canceled again if the halt would have canceled it (failure
    `halt-leaves-an-order-resting`). Called after a venue's answer moved ``cloid``; ``acked``:
    that answer was the order's acknowledgement, which proves a refused cancel came too early
    (the order stays ``CANCEL_FAILED`` and its status request may be overtaken by the ack)."""
    risk = tx.risk
    if not risk.halted:
        return
    order = tx.orders.get(cloid)
    if order is None:
        return
    early = acked and order.status is OrderStatus.CANCEL_FAILED
    if not (early or order.status in _RESTING):
        return
    cause = risk.halt_cause
    every = cause is not None and POLICIES[cause].cancels_every_order
    if every or not (
        closes_exposure(order.side, order.position_side, order.reduce_only)
        or cloid in _offsetting(tx, [order])
    ):
        _orders.cancel(tx, cloid, refused_early=early)


_RESTING = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


# --- intents -----------------------------------------------------------------------------------


def refuse(tx: Tx[Any], code: str, message: str) -> None:
    """Say why an order was refused (once while the reason stays the same)."""
    text = f"order refused ({code}): {message}"
    if tx.risk.last_refusal != text:
        tx.notify(Level.WARNING, f"refused:{code}", text)
        tx.risk = replace(tx.risk, last_refusal=text)


def resume(tx: Tx[Any]) -> None:
    """Lift a halt as its cause's policy says (:data:`gridcore.halts.POLICIES`)."""
    risk = tx.risk
    if not risk.halted:
        return
    policy = POLICIES[risk.halt_cause or HaltCause.OPERATOR]
    risk = replace(risk, halted=False, halt_reason="", halt_cause=None, error_streak=0)
    if policy.resume_rearms_drawdown:
        pnls = pnl_by_currency(tx.ledger, tx.quotes, tx.config)
        primary = tx.config.currencies[0] if tx.config.currencies else ""
        risk = replace(risk, peaks=pnls, peak_pnl=pnls.get(primary, ZERO))
    tx.risk = risk
    tx.notify(Level.INFO, "resumed", "trading resumed by the operator")
    for venue in tx.config.venues:
        _sync.begin_sync(tx, venue)


def flatten(tx: Tx[Any]) -> None:
    """Halt, then close exactly the ledger's quantity of every position, reduce-only IOC."""
    halt(tx, HaltCause.FLATTEN, "flatten requested")
    for (venue, symbol, side), pos in sorted(
        tx.ledger.positions.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2].value)
    ):
        if not pos.qty:
            continue
        instrument = tx.config.by_key.get((venue, symbol))
        if instrument is None:
            # Without the instrument's filters no valid close can be built; the stop must
            # still close everything else, so say it loudly and carry on.
            tx.notify(
                Level.ALERT,
                "flatten_blocked",
                f"{venue}/{symbol} {side.value} position {pos.qty} is on an instrument the "
                f"bot is not configured for; close it by hand",
            )
            continue
        quote = tx.quotes.get((venue, symbol))
        if quote is None:
            tx.notify(Level.ALERT, "flatten_blocked", f"no quote for {venue}/{symbol}")
            continue
        mid = quote.mid
        band = CTX.multiply(mid, tx.config.risk.slippage_cap)
        close_side = Side.SELL if pos.qty > 0 else Side.BUY
        if close_side is Side.SELL:
            price = instrument.round_price(CTX.subtract(mid, band), Rounding.UP)
        else:
            price = instrument.round_price(CTX.add(mid, band), Rounding.DOWN)
        # Close exactly the ledger's base quantity, reduce-only (failure `rollback-in-quote`).
        _orders.submit(
            tx,
            Submit(
                venue=venue,
                symbol=symbol,
                side=close_side,
                qty=abs(pos.qty),
                price=price,
                position_side=side,
                tif=TimeInForce.IOC,
                reduce_only=True,
                tag="flatten",
            ),
        )


def on_balance(tx: Tx[Any], event: BalanceReported) -> None:
    """Store a balance report; halt when equity no longer covers the reservations."""
    balances = dict(tx.risk.balances)
    balances[event.venue] = event
    tx.risk = replace(tx.risk, balances=balances)
    reserved = tx.risk.reserved.get(event.venue, ZERO)
    if reserved > event.equity and may_halt(tx):
        # The account no longer covers what open orders hold (a loss, a transfer
        # out, or a bad report): stop adding exposure and cancel what rests.
        halt(
            tx,
            HaltCause.MARGIN,
            f"{event.venue} equity {event.equity} is below the {reserved} reserved by open orders",
        )

"""The ledger's arithmetic on hand-computed examples, and its bounded fill dedup window.

Average-cost accounting: the average entry changes only when a position grows; reducing
realizes ``closed × (price − entry)`` (reversed for shorts); going through zero opens the
remainder at the fill price. Fees are paid (positive) or rebated (negative); funding is received
(positive) or paid. Every figure below was computed by hand.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from gridcore import FundingPaid, Ledger, OrderPartiallyFilled, PositionSide, Side, step
from gridcore.ledger import FillWindow, Position
from gridcore.numbers import CTX
from tests.unit.helpers import EPOCH, SYMBOL, VENUE, fill, scripted_state, synced

D = Decimal


def fold(*fills: tuple[str, Side, str, str, str]) -> Ledger:
    """Apply ``(fill_id, side, qty, price, fee)`` fills in order (one-way mode)."""
    ledger = Ledger()
    for i, (fid, side, qty, price, fee) in enumerate(fills):
        new = ledger.apply_fill(fill(fid, side, qty, price, fee=fee, ts=EPOCH + i))
        assert new is not None
        ledger = new
    return ledger


def test_long_grows_at_weighted_average_then_realizes_against_it() -> None:
    ledger = fold(("a", Side.BUY, "1", "100", "0"), ("b", Side.BUY, "3", "120", "0"))
    pos = ledger.position(VENUE, SYMBOL)
    assert pos.qty == D(4)
    assert pos.avg_entry == D(115)  # (1×100 + 3×120) / 4
    assert pos.realized == 0
    ledger = fold(
        ("a", Side.BUY, "1", "100", "0"),
        ("b", Side.BUY, "3", "120", "0"),
        ("c", Side.SELL, "1", "130", "0"),
    )
    pos = ledger.position(VENUE, SYMBOL)
    assert pos.qty == D(3)
    assert pos.avg_entry == D(115)  # reducing does not move the entry
    assert pos.realized == D(15)  # 1 × (130 − 115)


def test_closing_a_long_to_zero_resets_the_entry() -> None:
    ledger = fold(
        ("a", Side.BUY, "2", "100", "0"),
        ("b", Side.SELL, "1", "110", "0"),
        ("c", Side.SELL, "1", "90", "0"),
    )
    pos = ledger.position(VENUE, SYMBOL)
    assert pos.qty == 0
    assert pos.avg_entry == 0
    assert pos.realized == D(0)  # +10 then −10


def test_short_realizes_when_bought_back_lower() -> None:
    ledger = fold(
        ("a", Side.SELL, "2", "100", "0"),
        ("b", Side.SELL, "2", "110", "0"),
        ("c", Side.BUY, "1", "90", "0"),
    )
    pos = ledger.position(VENUE, SYMBOL)
    assert pos.qty == D(-3)
    assert pos.avg_entry == D(105)
    assert pos.realized == D(15)  # short 1 at 105 bought at 90


def test_flip_through_zero_realizes_the_old_side_and_opens_the_rest_at_the_fill_price() -> None:
    ledger = fold(("a", Side.BUY, "1", "100", "0"), ("b", Side.SELL, "3", "110", "0"))
    pos = ledger.position(VENUE, SYMBOL)
    assert pos.qty == D(-2)
    assert pos.avg_entry == D(110)
    assert pos.realized == D(10)
    ledger2 = ledger.apply_fill(fill("c", Side.BUY, "5", "100", ts=EPOCH + 9))
    assert ledger2 is not None
    pos = ledger2.position(VENUE, SYMBOL)
    assert pos.qty == D(3)
    assert pos.avg_entry == D(100)
    assert pos.realized == D(30)  # 10 + 2 × (110 − 100)


def test_hedge_mode_long_and_short_are_separate_positions() -> None:
    """A hedge-mode account holds LONG and SHORT legs that never net."""
    ledger = Ledger()
    for f in (
        fill("a", Side.BUY, "2", "100", position_side=PositionSide.LONG, ts=EPOCH),
        fill("b", Side.SELL, "1", "105", position_side=PositionSide.SHORT, ts=EPOCH + 1),
        fill("c", Side.SELL, "1", "110", position_side=PositionSide.LONG, ts=EPOCH + 2),
        fill("d", Side.BUY, "1", "95", position_side=PositionSide.SHORT, ts=EPOCH + 3),
    ):
        new = ledger.apply_fill(f)
        assert new is not None
        ledger = new
    long = ledger.position(VENUE, SYMBOL, PositionSide.LONG)
    short = ledger.position(VENUE, SYMBOL, PositionSide.SHORT)
    assert (long.qty, long.avg_entry, long.realized) == (D(1), D(100), D(10))
    assert (short.qty, short.avg_entry, short.realized) == (D(0), D(0), D(10))
    assert ledger.position(VENUE, SYMBOL, PositionSide.BOTH) == Position()
    assert ledger.totals().realized == D(20)


def test_fees_add_up_and_rebates_subtract() -> None:
    ledger = fold(
        ("a", Side.BUY, "1", "100", "0.05"),
        ("b", Side.SELL, "1", "101", "-0.02"),
    )
    pos = ledger.position(VENUE, SYMBOL)
    assert pos.fees == D("0.03")
    assert pos.realized == D(1)
    assert pos.net == D("0.97")


def test_unrealized_and_net() -> None:
    pos = fold(("a", Side.SELL, "2", "100", "0.1")).position(VENUE, SYMBOL)
    assert pos.unrealized(D(90)) == D(20)
    assert pos.unrealized(D(110)) == D(-20)
    assert pos.net == D("-0.1")
    assert Position().unrealized(D(1)) == 0


def test_funding_is_booked_once_per_payment_id() -> None:
    ledger = fold(("a", Side.BUY, "1", "100", "0"))
    paid = ledger.apply_funding(VENUE, SYMBOL, PositionSide.BOTH, D("-0.25"), "p1", EPOCH + 10)
    assert paid is not None
    assert paid.position(VENUE, SYMBOL).funding == D("-0.25")
    assert (
        paid.apply_funding(VENUE, SYMBOL, PositionSide.BOTH, D("-0.25"), "p1", EPOCH + 10) is None
    )
    again = paid.apply_funding(VENUE, SYMBOL, PositionSide.BOTH, D("0.10"), "p2", EPOCH + 20)
    assert again is not None
    pos = again.position(VENUE, SYMBOL)
    assert pos.funding == D("-0.15")
    assert pos.net == D("-0.15")
    assert again.totals().funding == D("-0.15")


def test_funding_event_through_the_kernel_counts_once() -> None:
    """A funding payment seen on the stream and again in a replay is booked once (`double-counted-fill`
    applied to funding)."""
    state, _ = synced(scripted_state())
    paid = FundingPaid(
        ts=EPOCH + 5_000,
        venue=VENUE,
        symbol=SYMBOL,
        position_side=PositionSide.BOTH,
        amount=D("1.5"),
        payment_id="8h-1",
    )
    state, _ = step(state, paid)
    state, _ = step(state, paid)
    assert state.ledger.position(VENUE, SYMBOL).funding == D("1.5")


def test_a_duplicate_fill_returns_none_and_counts_once() -> None:
    """Failure `double-counted-fill` at the ledger level."""
    f = fill("x", Side.BUY, "1", "100", fee="0.01")
    once = Ledger().apply_fill(f)
    assert once is not None
    assert once.apply_fill(f) is None
    assert once.has_seen(f)
    assert once.fill_count == 1


def test_last_fill_ts_is_the_newest_fill_whatever_the_order() -> None:
    """Reconciliation asks for fills since the last one seen: a late old fill must not move it
    back (which would only widen the request) nor a new one be missed."""
    ledger = Ledger()
    for fid, ts in (("a", 300), ("b", 100), ("c", 200)):
        new = ledger.apply_fill(fill(fid, Side.BUY, "1", "100", ts=EPOCH + ts))
        assert new is not None
        ledger = new
    assert ledger.last_fill_ts == {VENUE: EPOCH + 300}


def test_adopt_overwrites_size_and_entry_and_counts_a_repair() -> None:
    ledger = fold(("a", Side.BUY, "1", "100", "0.5"))
    fixed = ledger.adopt((VENUE, SYMBOL, PositionSide.BOTH), D(3), D(99))
    pos = fixed.position(VENUE, SYMBOL)
    assert (pos.qty, pos.avg_entry, pos.fees) == (D(3), D(99), D("0.5"))
    assert pos.cost == D(297)
    assert fixed.drift_repairs == 1
    flat = fixed.adopt((VENUE, SYMBOL, PositionSide.BOTH), D(0), D(99))
    assert flat.position(VENUE, SYMBOL).avg_entry == 0


def test_partial_fill_through_the_kernel_updates_the_ledger_for_an_unknown_order() -> None:
    """A fill the core did not name (manual trade, liquidation) still moves the position."""
    state, _ = synced(scripted_state())
    state, _ = step(
        state,
        OrderPartiallyFilled(
            ts=EPOCH + 3_000, fill=fill("m1", Side.SELL, "0.5", "50000", ts=EPOCH + 3_000)
        ),
    )
    assert state.ledger.position(VENUE, SYMBOL).qty == D("-0.5")


# --- the bounded dedup window -----------------------------------------------------------------


def test_window_memory_is_bounded() -> None:
    """State size stays bounded by a window, never by history (cost follows the data)."""
    window = FillWindow(generation_size=4, max_generations=3)
    for i in range(1_000):
        window = window.add(f"f{i}", i)
        assert len(window) <= 4 * 3 + 4
        assert len(window.sealed) <= 3


def test_window_remembers_recent_ids_exactly() -> None:
    window = FillWindow(generation_size=4, max_generations=3)
    for i in range(100):
        window = window.add(f"f{i}", i)
    for i in range(100 - 12, 100):
        assert window.seen(f"f{i}", i)
    assert not window.seen("new", 100)


def test_watermark_covers_dropped_generations() -> None:
    """Ids dropped from memory are still treated as applied through the watermark: a fill at
    or before it is never applied twice, a later new fill is applied."""
    window = FillWindow(generation_size=4, max_generations=2)
    for i in range(40):
        window = window.add(f"f{i}", 1_000 + i)
    assert window.watermark >= 1_000
    dropped_ts = 1_000  # f0 was dropped long ago
    assert window.seen("f0", dropped_ts)
    assert window.seen("never-seen-but-old", window.watermark)
    assert not window.seen("fresh", window.watermark + 1)


@pytest.mark.parametrize("n", [0, 1, 255, 256, 257, 300])
def test_default_window_keeps_every_id_of_a_normal_session(n: int) -> None:
    window = FillWindow()
    for i in range(n):
        window = window.add(f"f{i}", i)
    assert window.watermark == -1
    assert all(window.seen(f"f{i}", i) for i in range(n))
    assert len(window) == n


# --- exact money: the cost basis and the one rounding ---------------------------------------------


def test_average_entry_is_rounded_once_and_a_round_trip_realizes_exactly_its_cash_flow() -> None:
    """Buy 1 at 100 and 2 at 101: cost 302 exactly, entry 100.6667 (302 / 3 rounded half-even to
    4 places beyond the whole-number prices). A partial close realizes against that entry; the
    close to zero books what is left of the cost, so the total is the cash flow, 330 − 302."""
    ledger = fold(("a", Side.BUY, "1", "100", "0"), ("b", Side.BUY, "2", "101", "0"))
    pos = ledger.position(VENUE, SYMBOL)
    assert (pos.qty, pos.cost, pos.avg_entry) == (D(3), D(302), D("100.6667"))
    assert str(pos.avg_entry) == "100.6667"
    ledger = fold(
        ("a", Side.BUY, "1", "100", "0"),
        ("b", Side.BUY, "2", "101", "0"),
        ("c", Side.SELL, "1", "110", "0"),
    )
    pos = ledger.position(VENUE, SYMBOL)
    assert pos.realized == D("9.3333")  # 1 × (110 − 100.6667), exact given the entry
    assert pos.cost == D("201.3333")
    assert pos.avg_entry == D("100.6667")  # reducing does not move the entry
    assert CTX.add(pos.realized, pos.unrealized(D(110))) == D(28)  # exact at any mark
    ledger = fold(
        ("a", Side.BUY, "1", "100", "0"),
        ("b", Side.BUY, "2", "101", "0"),
        ("c", Side.SELL, "1", "110", "0"),
        ("d", Side.SELL, "2", "110", "0"),
    )
    pos = ledger.position(VENUE, SYMBOL)
    assert (pos.qty, pos.cost, pos.avg_entry) == (D(0), D(0), D(0))
    assert pos.realized == D(28)


def test_exchange_sized_fills_give_money_with_the_decimals_of_their_inputs() -> None:
    """The default market: lot 0.001, tick 0.1, 2 bps fees. Nothing has 40 digits."""
    ledger = fold(
        ("a", Side.BUY, "0.002", "50801.8", "0.02032072"),
        ("b", Side.BUY, "0.001", "50700.1", "0.01014002"),
        ("c", Side.SELL, "0.002", "50900.3", "0.02036012"),
    )
    pos = ledger.position(VENUE, SYMBOL)
    # cost 101.6036 + 50.7001 = 152.3037; entry 152.3037 / 0.003 = 50767.9 exactly
    assert pos.avg_entry == D("50767.9")
    assert pos.realized == D("0.2648")  # 0.002 × (50900.3 − 50767.9)
    assert pos.cost == D("50.7679")
    assert pos.fees == D("0.05082086")
    assert pos.unrealized(D("50800.05")) == D("0.03215")


def test_realign_moves_realized_by_the_exact_change_of_the_cost_basis() -> None:
    key = (VENUE, SYMBOL, PositionSide.BOTH)
    ledger = fold(("a", Side.BUY, "1", "100", "0"), ("b", Side.BUY, "2", "101", "0"))
    before = ledger.position(*key)
    after = ledger.realign(key, D("100.5")).position(*key)
    assert (after.qty, after.avg_entry, after.cost) == (D(3), D("100.5"), D("301.5"))
    assert after.realized == D("-0.5")  # cost went from 302 to 301.5
    mark = D("123.4")
    assert CTX.add(after.realized, after.unrealized(mark)) == CTX.add(
        before.realized, before.unrealized(mark)
    )
    assert ledger.realign(key, before.avg_entry) is ledger


def test_a_flip_opens_the_rest_at_the_fill_price_on_the_entry_grid() -> None:
    pos = fold(("a", Side.BUY, "1", "100.5", "0"), ("b", Side.SELL, "3", "110.5", "0")).position(
        VENUE, SYMBOL
    )
    assert (pos.qty, pos.cost, pos.realized) == (D(-2), D(-221), D(10))
    assert str(pos.avg_entry) == "110.50000"  # the price, on the 4-places-finer entry grid


def test_an_entry_from_prices_written_with_an_exponent_still_has_decimals() -> None:
    pos = fold(("a", Side.BUY, "1", "5E+4", "0"), ("b", Side.BUY, "2", "5.1E+4", "0")).position(
        VENUE, SYMBOL
    )
    assert pos.cost == D(152_000)
    assert str(pos.avg_entry) == "50666.6667"  # 4 places, not rounded to 1E+4

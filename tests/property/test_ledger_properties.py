"""Ledger properties: duplicated, reordered or split fills give the same ledger.

Failure `double-counted-fill` (replayed fills counted again) and `partial-fill-threshold` (partial fills lost to a threshold) become
"applying a fill twice equals applying it once" and "any split of a fill adds up exactly".

What reordering may change. Under average-cost accounting the *split* of the total PnL between
realized and unrealized depends on the order of the fills (buy 100, sell 110, buy 120 realizes
10; buy 100, buy 120, sell 110 realizes 0), but the total does not: ``realized − cost`` (the
realized PnL plus the unrealized PnL at any mark, minus ``qty × mark``) is the cash flow of the
fills, whatever their order, and the ledger keeps it exactly. So for any reordering the position
size, fees, fill count and that total are exactly equal; for reorderings that keep the first
sight of every fill in order (duplicates arriving late), the whole ledger is equal; and for
fills that all grow the position, the average entry itself is order-independent.

No noise. Every money figure is a sum of products of the inputs (sizes on the lot, prices on the
tick, fees in cents) except the average entry, which is rounded by one named rule; so realized
PnL has at most lot + tick + ``ENTRY_EXTRA_PLACES`` decimals, exactly lot + tick once flat, and
fees no more than the fees had.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from gridcore import Fill, FillsReported, Ledger, OrderPartiallyFilled, PositionSide, Side, step
from gridcore.numbers import CTX, ENTRY_EXTRA_PLACES, places
from tests.property.helpers import fills, lots, money, prices, split
from tests.unit.helpers import EPOCH, SYMBOL, VENUE, fill, scripted_state, synced

KEYS = [(VENUE, SYMBOL, side) for side in PositionSide]


def fold(sequence: list[Fill]) -> Ledger:
    ledger = Ledger()
    for f in sequence:
        new = ledger.apply_fill(f)
        if new is not None:
            ledger = new
    return ledger


def cash_total(ledger: Ledger, key: tuple[str, str, PositionSide]) -> Decimal:
    """``realized − cost``: the fills' cash flow, independent of their order."""
    pos = ledger.positions.get(key)
    if pos is None:
        return Decimal(0)
    return CTX.subtract(pos.realized, pos.cost)


def cash_flow(sequence: list[Fill], key: tuple[str, str, PositionSide]) -> Decimal:
    """What the fills on ``key`` paid and received, computed independently of the ledger."""
    total = Decimal(0)
    for f in {f.fill_id: f for f in sequence}.values():
        if (f.venue, f.symbol, f.position_side) == key:
            value = CTX.multiply(f.qty, f.price)
            total = CTX.add(total, value if f.side is Side.SELL else -value)
    return total


@st.composite
def deliveries(draw: st.DrawFn, originals: list[Fill]) -> list[Fill]:
    """The fills, each delivered at least once and up to three times, in any order."""
    copies = [f for f in originals for _ in range(draw(st.integers(min_value=1, max_value=3)))]
    return draw(st.permutations(copies))


def test_realized_pnl_is_path_dependent_but_the_total_is_not() -> None:
    """Documents why the properties below compare the total, not ``realized`` alone."""
    a = [
        fill("1", Side.BUY, "1", "100", ts=EPOCH + 1),
        fill("2", Side.SELL, "1", "110", ts=EPOCH + 2),
        fill("3", Side.BUY, "1", "120", ts=EPOCH + 3),
    ]
    b = [a[0], a[2], a[1]]
    key = (VENUE, SYMBOL, PositionSide.BOTH)
    assert fold(a).positions[key].realized == 10
    assert fold(b).positions[key].realized == 0
    assert cash_total(fold(a), key) == cash_total(fold(b), key) == Decimal(-110)


@given(data=st.data(), originals=fills(position_sides=st.sampled_from(PositionSide)))
def test_duplicated_and_reordered_fills_give_the_same_ledger(
    data: st.DataObject, originals: list[Fill]
) -> None:
    """Failure `double-counted-fill`: a fill seen on the stream, in a REST report and in a replay counts once,
    in whatever order the copies arrive."""
    reference = fold(originals)
    delivered = data.draw(deliveries(originals))
    got = fold(delivered)
    assert got.fill_count == reference.fill_count == len(originals)
    for key in KEYS:
        ours, theirs = got.position(*key), reference.position(*key)
        assert ours.qty == theirs.qty
        assert ours.fees == theirs.fees
        assert cash_total(got, key) == cash_total(reference, key) == cash_flow(originals, key)
    assert got.last_fill_ts == reference.last_fill_ts


@given(data=st.data(), originals=fills())
def test_late_duplicates_change_nothing_at_all(data: st.DataObject, originals: list[Fill]) -> None:
    """Duplicates arriving after their original (the replay and overlap case) leave the ledger
    exactly as if each fill had come once: realized and average entry included."""
    delivered = list(originals)
    extra = data.draw(st.lists(st.sampled_from(originals), max_size=2 * len(originals)))
    for dup in extra:
        first = delivered.index(dup)
        at = data.draw(st.integers(min_value=first + 1, max_value=len(delivered)))
        delivered.insert(at, dup)
    assert fold(delivered).positions == fold(originals).positions


@given(
    data=st.data(),
    originals=fills(sides=st.just(Side.BUY)),
)
def test_average_entry_of_a_growing_position_is_order_independent(
    data: st.DataObject, originals: list[Fill]
) -> None:
    reference = fold(originals).position(VENUE, SYMBOL)
    got = fold(data.draw(deliveries(originals))).position(VENUE, SYMBOL)
    assert got.qty == reference.qty
    assert got.avg_entry == reference.avg_entry
    assert got.cost == reference.cost
    assert got.realized == reference.realized == 0


@given(
    data=st.data(),
    before=fills(min_size=0, max_size=4),
    side=st.sampled_from(Side),
    lots_total=st.integers(min_value=1, max_value=3_000),
    price=prices(min_ticks=100_000, max_ticks=1_000_000),
    fee_cents=st.integers(min_value=-500, max_value=500),
)
def test_any_split_of_a_fill_gives_the_same_position_and_fees(
    data: st.DataObject,
    before: list[Fill],
    side: Side,
    lots_total: int,
    price: Decimal,
    fee_cents: int,
) -> None:
    """Failure `partial-fill-threshold`: partial fills that add up to the whole are the whole (no threshold), from
    any starting position (growing, reducing or flipping through zero)."""
    lot = Decimal("0.001")
    ts = EPOCH + 1_000_000
    whole = fill(
        "whole", side, Decimal(lots_total) * lot, price, ts=ts, fee=Decimal(fee_cents) / 100
    )
    parts = data.draw(split(lots_total))
    # Fees split in cents: all but the last part carry a drawn share, the last the rest.
    shares = [data.draw(st.integers(min_value=-500, max_value=500)) for _ in range(len(parts) - 1)]
    fee_list = [*shares, fee_cents - sum(shares)]
    pieces = [
        fill(f"p{i}", side, Decimal(n) * lot, price, ts=ts + i, fee=Decimal(c) / 100)
        for i, (n, c) in enumerate(zip(parts, fee_list, strict=True))
    ]
    one = fold([*before, whole]).position(VENUE, SYMBOL)
    many = fold([*before, *pieces]).position(VENUE, SYMBOL)
    assert sum((p.qty for p in pieces), Decimal(0)) == whole.qty
    assert many.qty == one.qty
    assert many.fees == one.fees
    assert many.realized == one.realized
    assert many.avg_entry == one.avg_entry
    assert many.cost == one.cost


@given(data=st.data(), originals=fills(min_size=1, max_size=8, min_gap_ms=1))
def test_a_fills_report_in_any_order_with_duplicates_gives_the_same_ledger_exactly(
    data: st.DataObject, originals: list[Fill]
) -> None:
    """Failure `missed-fills-on-reconnect`, `double-counted-fill` through the kernel: a REST fills report overlapping the stream, with
    its fills in any order and repeated, leaves the ledger exactly as the stream alone did."""
    state, _ = synced(scripted_state())
    stream = state
    for f in originals:
        stream, _ = step(stream, OrderPartiallyFilled(ts=f.ts, fill=f))
    delivered = data.draw(deliveries(originals))
    prefix = data.draw(st.integers(min_value=0, max_value=len(originals)))
    replayed = state
    for f in originals[:prefix]:
        replayed, _ = step(replayed, OrderPartiallyFilled(ts=f.ts, fill=f))
    replayed, _ = step(
        replayed,
        FillsReported(ts=originals[-1].ts + 1, venue=VENUE, since=EPOCH, fills=tuple(delivered)),
    )
    assert replayed.ledger.positions == stream.ledger.positions
    assert replayed.ledger.fill_count == stream.ledger.fill_count == len(originals)


@given(qty=lots(), price=prices(), fee=money())
def test_applying_a_fill_twice_equals_applying_it_once(
    qty: Decimal, price: Decimal, fee: Decimal
) -> None:
    """failure `double-counted-fill`, stated literally."""
    f = fill("f", Side.SELL, qty, price, fee=fee)
    once = fold([f])
    assert fold([f, f]) == once


@given(originals=fills(position_sides=st.sampled_from(PositionSide), max_size=20), mark=prices())
def test_money_has_no_more_decimals_than_the_inputs_justify(
    originals: list[Fill], mark: Decimal
) -> None:
    """Sizes have 3 decimals (lot 0.001), prices 1 (tick 0.1), fees 2 (cents): a fill's value
    has 4, realized PnL at most 4 + ENTRY_EXTRA_PLACES (a partial close against the rounded
    entry) and exactly 4 once the position is flat again; unrealized PnL at a tick-sized mark
    has 4; fees keep their 2. No 40-digit division leaks anywhere, and realized + unrealized is
    exactly the fills' cash flow plus the open size at the mark."""
    ledger = fold(originals)
    value_places = 3 + 1
    for key in KEYS:
        pos = ledger.position(*key)
        assert places(pos.realized) <= value_places + ENTRY_EXTRA_PLACES
        assert places(pos.cost) <= value_places + ENTRY_EXTRA_PLACES
        assert places(pos.avg_entry) <= 1 + ENTRY_EXTRA_PLACES
        assert places(pos.fees) <= 2
        assert places(pos.unrealized(mark)) <= value_places + ENTRY_EXTRA_PLACES
        if not pos.qty:
            assert pos.cost == pos.avg_entry == 0
            assert places(pos.realized.normalize()) <= value_places
        total = CTX.add(pos.realized, pos.unrealized(mark))
        assert total == CTX.add(cash_flow(originals, key), CTX.multiply(pos.qty, mark))

"""The backtest's results (gridcore.sim.results): each statistic pinned on small hand-made
equity curves and fill lists with known answers, plus properties over any of them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.config import load_config
from gridcore.events import Fill
from gridcore.instruments import PositionSide, Side
from gridcore.numbers import CTX
from gridcore.sim import Trace, backtest
from gridcore.sim.results import (
    DAY_MS,
    Outage,
    Recorder,
    daily_returns,
    drawdown,
    percent,
    results,
    round_trips,
    sharpe,
    sortino,
    trip_stats,
)

D = Decimal
T0 = 1_700_000_000_000  # fills carry real times; the tests count from here
_N = [0]


def fill(side: str, qty: str, price: str, fee: str = "0", ts: int = 0, symbol: str = "X") -> Fill:
    _N[0] += 1
    return Fill(
        ts=T0 + ts,
        venue="sim",
        symbol=symbol,
        fill_id=f"f{_N[0]}",
        cloid=None,
        venue_order_id=None,
        side=Side.BUY if side == "buy" else Side.SELL,
        position_side=PositionSide.BOTH,
        price=D(price),
        qty=D(qty),
        fee=D(fee),
    )


# --- drawdown -------------------------------------------------------------------------------


def test_drawdown_of_a_fall_and_recovery() -> None:
    curve = [(0, D(100)), (10, D(120)), (20, D(90)), (30, D(110)), (40, D(125))]
    dd = drawdown(curve)
    assert dd.max_fall == D(30)
    assert dd.max_pct == D("25.0000")  # 30 of the 120 peak
    assert dd.duration_ms == 30  # below 120 from t=10 until t=40


def test_drawdown_still_underwater_runs_to_the_end() -> None:
    curve = [(0, D(100)), (5, D(95))]
    assert drawdown(curve, end_ts=50).duration_ms == 50
    assert drawdown(curve).duration_ms == 5


def test_drawdown_pct_and_fall_may_come_from_different_falls() -> None:
    # 10 of 50 (20 %) early, then 15 of 150 (10 %) later.
    curve = [(0, D(50)), (1, D(40)), (2, D(150)), (3, D(135)), (4, D(150))]
    dd = drawdown(curve)
    assert (dd.max_fall, dd.max_pct) == (D(15), D("20.0000"))
    assert dd.duration_ms == 2  # t=0..2 and t=2..4


def test_drawdown_of_a_rising_or_empty_curve_is_zero() -> None:
    assert drawdown([(0, D(1)), (1, D(2)), (2, D(3))]).max_fall == 0
    assert drawdown([]).duration_ms == 0


def test_back_at_the_peak_counts_as_recovered() -> None:
    curve = [(0, D(100)), (1, D(90)), (2, D(100)), (3, D(100)), (7, D(99))]
    dd = drawdown(curve, end_ts=8)
    assert dd.duration_ms == 5  # from the last time at 100 (t=3) to the end


# --- round trips ----------------------------------------------------------------------------


def test_round_trip_long_with_fees() -> None:
    trips = round_trips([fill("buy", "1", "100", "0.1"), fill("sell", "1", "110", "0.2")])
    assert len(trips) == 1
    t = trips[0]
    assert t.long and t.qty == 1 and t.gross == D(10) and t.fees == D("0.3")
    assert t.pnl == D("9.7")


def test_round_trips_fifo_and_partial_fees() -> None:
    trips = round_trips(
        [
            fill("buy", "1", "100", "1"),
            fill("buy", "1", "90", "1"),
            fill("sell", "1.5", "95", "3"),
        ]
    )
    # First lot (100) closes whole at 95: -5; half the second lot (90) at 95: +2.5.
    assert [t.gross for t in trips] == [D(-5), D("2.5")]
    assert [t.fees for t in trips] == [D(1) + D(2), D("0.5") + D(1)]


def test_round_trip_short_and_flip() -> None:
    trips = round_trips(
        [
            fill("sell", "2", "100"),
            fill("buy", "3", "90"),  # covers 2 (+20), opens a long of 1 at 90
            fill("sell", "1", "95"),  # +5
        ]
    )
    assert [(t.long, t.qty, t.gross) for t in trips] == [(False, D(2), D(20)), (True, D(1), D(5))]


def test_round_trips_are_per_instrument() -> None:
    trips = round_trips([fill("buy", "1", "10", symbol="A"), fill("sell", "1", "20", symbol="B")])
    assert trips == []


def test_trip_stats_known_answer() -> None:
    trips = round_trips(
        [
            fill("buy", "1", "100"),
            fill("sell", "1", "110"),  # +10
            fill("buy", "1", "100"),
            fill("sell", "1", "96"),  # -4
            fill("buy", "1", "100"),
            fill("sell", "1", "100"),  # 0: neither
            fill("buy", "1", "100"),
            fill("sell", "1", "101"),  # +1
        ]
    )
    s = trip_stats(trips)
    assert (s.trips, s.wins, s.losses) == (4, 2, 1)
    assert s.win_rate == D("0.5")
    assert s.gross_profit == D(11) and s.gross_loss == D(4)
    assert s.profit_factor == D("2.75")


def test_trip_stats_without_trips_or_losses() -> None:
    assert trip_stats([]).win_rate is None
    one = round_trips([fill("buy", "1", "1"), fill("sell", "1", "2")])
    assert trip_stats(one).profit_factor is None and trip_stats(one).win_rate == 1


# --- daily returns, Sharpe, Sortino ---------------------------------------------------------


def test_daily_returns_take_each_days_last_equity() -> None:
    curve = [(0, D(100)), (DAY_MS - 1, D(110)), (DAY_MS + 5, D(99)), (3 * DAY_MS, D(99))]
    returns = daily_returns(curve, start_ts=0, end_ts=3 * DAY_MS, start_equity=D(100))
    # day 0 ends at 110, day 1 at 99, day 2 has no point (99 carried), day 3 at 99.
    assert returns == [D("0.1"), D("-0.1"), D(0), D(0)]


def test_sharpe_and_sortino_known_answers() -> None:
    returns = [D("0.01"), D("-0.01"), D("0.02"), D("0.02")]
    # mean 0.01, sample sd sqrt(0.0006/3) = 0.0141421..., × sqrt(365)
    assert sharpe(returns) == D("13.5093")
    # downside deviation sqrt(0.0001 / 4) = 0.005 → 2 × sqrt(365)
    assert sortino(returns) == D("38.2099")


def test_sharpe_undefined_cases() -> None:
    assert sharpe([D("0.1")]) is None
    assert sharpe([D("0.1"), D("0.1")]) is None
    assert sortino([D("0.1"), D("0.2")]) is None


def test_percent() -> None:
    assert percent(D(1), D(3)) == D("33.3333")
    assert percent(D(1), D(0)) is None


def test_results_of_a_small_run() -> None:
    fills = [fill("buy", "1", "100", "1", ts=1), fill("sell", "1", "120", "1", ts=2)]
    r = results(
        starting_balance=D(1000),
        net_pnl=D(18),
        realized_pnl=D(20),
        fees=D(2),
        curve=[(0, D(1000)), (1, D(999)), (2, D(1018))],
        fills=fills,
        start_ts=0,
        end_ts=10,
        outages=[Outage(venue="sim", start=3, end=5), Outage(venue="sim", start=8, end=None)],
    )
    assert r.end_equity == D(1018) and r.return_pct == D("1.8")
    assert r.max_drawdown_pct == D("0.1") and r.max_drawdown_duration_ms == 2
    assert (r.round_trips, r.wins, r.win_rate) == (1, 1, D(1))
    assert r.fee_share_pct == D(10)
    assert (r.outages, r.outage_ms) == (2, 2 + 2)
    assert r.days == 1 and r.sharpe_daily is None


# --- properties -----------------------------------------------------------------------------

_prices = st.integers(min_value=1, max_value=1000).map(D)
_fills = st.lists(
    st.tuples(st.booleans(), st.integers(min_value=1, max_value=5), _prices),
    max_size=30,
).map(
    lambda xs: [
        fill("buy" if b else "sell", str(q), str(p), ts=i) for i, (b, q, p) in enumerate(xs)
    ]
)


@given(_fills)
def test_trip_properties(fills: list[Fill]) -> None:
    trips = round_trips(fills)
    stats = trip_stats(trips)
    assert stats.wins + stats.losses <= stats.trips == len(trips)
    if stats.win_rate is not None:
        assert 0 <= stats.win_rate <= 1
    assert stats.gross_loss >= 0 and stats.gross_profit >= 0
    if stats.profit_factor is not None:
        assert stats.profit_factor >= 0
    # Matched size never exceeds what was traded on either side.
    bought = sum((f.qty for f in fills if f.side is Side.BUY), D(0))
    sold = sum((f.qty for f in fills if f.side is Side.SELL), D(0))
    assert sum((t.qty for t in trips), D(0)) <= min(bought, sold)


@given(st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=50))
def test_drawdown_properties(values: list[int]) -> None:
    curve = [(i, D(v)) for i, v in enumerate(values)]
    dd = drawdown(curve)
    assert 0 <= dd.max_pct < 100
    assert 0 <= dd.duration_ms <= len(values) - 1
    # The largest fall is the largest peak-minus-later-value.
    expected = max((max(values[: i + 1]) - v for i, v in enumerate(values)), default=0)
    assert dd.max_fall == expected


# --- on a real backtest ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded() -> tuple[Trace, Recorder]:
    recorder = Recorder()
    trace = backtest(load_config(), ticks=6_000, reducer=recorder)
    return trace, recorder


def test_the_recorder_changes_nothing_and_measures_the_kernels_drawdown(
    recorded: tuple[Trace, Recorder],
) -> None:
    trace, recorder = recorded
    plain = backtest(load_config(), ticks=6_000)
    assert trace.summary == plain.summary
    start = trace.summary.start_ts
    curve = recorder.equity(D(10_000), start)
    # The % figure rests on the very falls the kernel measures in quote.
    assert drawdown(curve).max_fall == trace.summary.max_drawdown
    assert recorder.first_quote is not None and recorder.first_quote.ts == start


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=DAY_MS // 2),
            st.integers(min_value=-40, max_value=40),
        ),
        max_size=60,
    ),
    balance=st.sampled_from([D(1), D(50), D(10_000)]),
)
def test_the_recorders_thinned_curve_gives_the_figures_of_the_whole_curve(
    steps: list[tuple[int, int]], balance: Decimal
) -> None:
    """The recorder keeps fewer points than it is given, never changing the drawdown (fall, %,
    duration) or the daily returns of the curve, whatever the starting balance."""
    recorder = Recorder()
    whole: list[tuple[int, Decimal]] = []
    ts, start = 0, 0
    for gap, value in steps:
        ts += gap
        pnl = D(value)
        if whole and whole[-1][1] == pnl:
            continue  # the recorder notes a point only when the value changed
        whole.append((ts, pnl))
        recorder._note(ts, pnl)
    rest = iter(whole)
    assert all(p in rest for p in recorder.pnl)  # a subsequence of what it was given
    thin = recorder.equity(balance, start)
    full = [(start, balance)] + [(t, CTX.add(balance, v)) for t, v in whole]
    end = ts + 1_000
    assert drawdown(thin, end_ts=end) == drawdown(full, end_ts=end)
    assert drawdown(thin) == drawdown(full)
    kwargs = {"start_ts": start, "end_ts": end, "start_equity": balance}
    assert daily_returns(thin, **kwargs) == daily_returns(full, **kwargs)  # type: ignore[arg-type]

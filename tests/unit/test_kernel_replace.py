"""The kernel's ``replace`` builds exactly what ``attrs.evolve`` builds, for every value type it
is used on (it is generated per class: a slip there would corrupt state silently)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcore.errors import InvalidEvent
from gridcore.events import Fill
from gridcore.instruments import PositionSide, Side, TimeInForce
from gridcore.kernel import replace
from gridcore.ledger import Ledger, Position
from gridcore.lifecycle import Order, OrderStatus
from gridcore.risk import RiskState
from gridcore.sync import FundingStatus, SyncPhase, VenueStatus

ORDER = Order(
    cloid="g:1",
    venue="sim",
    symbol="BTC-PERP",
    side=Side.BUY,
    position_side=PositionSide.BOTH,
    qty=Decimal("0.002"),
    price=Decimal("50000.1"),
    tif=TimeInForce.GTC,
    reduce_only=False,
    status=OrderStatus.PENDING_NEW,
    created_ts=1,
    updated_ts=1,
)

decimals = st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False)


@given(
    status=st.sampled_from(OrderStatus),
    ts=st.integers(min_value=0, max_value=2**40),
    filled=decimals,
    reserved=decimals,
    requested=st.booleans(),
)
def test_order_replace_equals_evolve(
    status: OrderStatus, ts: int, filled: Decimal, reserved: Decimal, requested: bool
) -> None:
    changes: dict[str, Any] = {
        "status": status,
        "updated_ts": ts,
        "filled_qty": filled,
        "reserved": reserved,
        "status_requested": requested,
    }
    new = replace(ORDER, **changes)
    assert type(new) is Order
    assert new == attrs.evolve(ORDER, **changes)
    assert ORDER.status is OrderStatus.PENDING_NEW  # the input is never changed


@given(halted=st.booleans(), reason=st.text(max_size=5), streak=st.integers(0, 9))
def test_risk_state_replace_runs_post_init_like_evolve(
    halted: bool, reason: str, streak: int
) -> None:
    risk = RiskState()
    changes: dict[str, Any] = {"halted": halted, "halt_reason": reason, "error_streak": streak}
    assert replace(risk, **changes) == attrs.evolve(risk, **changes)


@pytest.mark.parametrize(
    ("value", "changes"),
    [
        (VenueStatus(), {"phase": SyncPhase.SYNCED, "last_reconcile": 7}),
        (FundingStatus(), {"checked": 3}),
        (Position(), {"qty": Decimal("0.5"), "fees": Decimal("0.1")}),
        (Ledger(), {"fill_count": 2}),
        (ORDER, {}),
    ],
)
def test_other_values_replace_equals_evolve(value: Any, changes: dict[str, Any]) -> None:
    assert replace(value, **changes) == attrs.evolve(value, **changes)


def test_validated_class_still_validates() -> None:
    fill = Fill(
        ts=1_700_000_000_000,
        venue="sim",
        symbol="BTC-PERP",
        fill_id="f1",
        cloid="g:1",
        venue_order_id=None,
        side=Side.BUY,
        position_side=PositionSide.BOTH,
        qty=Decimal("0.001"),
        price=Decimal("50000"),
        fee=Decimal("0"),
    )
    assert replace(fill, ts=1_700_000_000_001) == attrs.evolve(fill, ts=1_700_000_000_001)
    with pytest.raises(InvalidEvent):
        replace(fill, qty=Decimal("-1"))


def test_unknown_field_is_refused() -> None:
    with pytest.raises(TypeError, match="nope"):
        replace(ORDER, nope=1)

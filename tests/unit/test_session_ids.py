"""The cloid prefix: epoch folded with the session nonce; deterministic for a given nonce."""

from __future__ import annotations

import pytest

from gridcore.core import cloid_prefix, initial_state
from gridcore.errors import ContractError
from tests.unit.helpers import EPOCH, Scripted, kernel_config, scripted_state, submit, synced


def _first_cloid(nonce: int) -> str:
    state, _ = synced(initial_state(kernel_config(), Scripted(), epoch=EPOCH, nonce=nonce))
    _, _, place = submit(state, ts=EPOCH + 2_000, qty="0.001", price="49000")
    assert place is not None
    return place.cloid


def test_the_nonce_folds_into_the_prefix_and_nothing_else() -> None:
    plain, other = _first_cloid(0), _first_cloid(0x1234_5678_9ABC_DEF0)
    assert plain == _first_cloid(0)  # deterministic: a backtest stays bit-identical
    assert plain.startswith(f"0x{EPOCH:016x}")  # nonce 0: the historical form
    assert other.startswith(f"0x{cloid_prefix(EPOCH, 0x1234_5678_9ABC_DEF0):016x}")
    assert plain[18:] == other[18:] and plain[:18] != other[:18]
    assert len(other) == 34 and int(other, 16) < 2**128


def test_a_scripted_state_has_no_nonce_by_default() -> None:
    assert scripted_state().nonce == 0


@pytest.mark.parametrize("nonce", [-1, 2**64, "7"])
def test_a_nonce_out_of_range_is_refused(nonce: object) -> None:
    with pytest.raises(ContractError, match="nonce must be an integer"):
        initial_state(kernel_config(), Scripted(), epoch=EPOCH, nonce=nonce)  # type: ignore[arg-type]

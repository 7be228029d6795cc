"""The Hyperliquid nonce allocator: strictly increasing whatever the clock does, and never
reusing a nonce across a restart (the high-water mark is on disk before a nonce is issued)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcore.shells.venues.hyperliquid.nonces import NonceAllocator, nonce_path

SIGNER = "0x14791697260E4c9A71f18484C9f997B308e59325"


class _Clock:
    def __init__(self, readings: list[int]) -> None:
        self.readings = list(readings)
        self.now = readings[0] if readings else 0

    def __call__(self) -> int:
        if self.readings:
            self.now = self.readings.pop(0)
        return self.now


@given(st.lists(st.integers(min_value=0, max_value=2**50), min_size=1, max_size=60))
def test_nonces_strictly_increase_whatever_the_clock_does(readings: list[int]) -> None:
    clock = _Clock(readings)
    alloc = NonceAllocator(signer=SIGNER, now_ms=clock, path=None)
    issued = [alloc.next() for _ in readings]
    assert all(b > a for a, b in itertools.pairwise(issued))
    # Each nonce is the clock when the clock is ahead, else last + 1.
    last = 0
    for reading, nonce in zip(readings, issued, strict=True):
        assert nonce == max(reading, last + 1)
        last = nonce


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=2**45), min_size=1, max_size=10),
    st.lists(st.integers(min_value=0, max_value=2**45), min_size=1, max_size=10),
)
def test_a_restart_never_reuses_a_nonce(
    tmp_path_factory: pytest.TempPathFactory, before: list[int], after: list[int]
) -> None:
    path = nonce_path(tmp_path_factory.mktemp("nonces"), SIGNER)
    first = NonceAllocator(signer=SIGNER, now_ms=_Clock(before), path=path)
    issued = [first.next() for _ in before]
    # A new process (the clock may be behind now): every nonce beats every earlier one.
    first.close()  # the process ends
    second = NonceAllocator(signer=SIGNER, now_ms=_Clock(after), path=path)
    assert second.last == issued[-1]
    later = [second.next() for _ in after]
    assert min(later) > max(issued)
    second.close()


def test_the_clock_stepping_back_counts_up_from_the_last_nonce(tmp_path: Path) -> None:
    clock = _Clock([1_700_000_000_000, 1_699_999_990_000, 1_699_999_990_000])
    alloc = NonceAllocator(signer=SIGNER, now_ms=clock, path=nonce_path(tmp_path, SIGNER))
    assert [alloc.next(), alloc.next(), alloc.next()] == [
        1_700_000_000_000,
        1_700_000_000_001,
        1_700_000_000_002,
    ]
    alloc.close()


def test_a_file_of_another_signer_or_unreadable_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    alloc = NonceAllocator(signer=SIGNER, now_ms=lambda: 5, path=path)
    alloc.next()
    alloc.close()
    with pytest.raises(ValueError, match="belongs to signer"):
        NonceAllocator(signer="0x" + "1" * 40, now_ms=lambda: 5, path=path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        NonceAllocator(signer=SIGNER, now_ms=lambda: 5, path=path)


def test_one_signer_per_process(tmp_path: Path) -> None:
    path = nonce_path(tmp_path, SIGNER)
    first = NonceAllocator.shared(signer=SIGNER, now_ms=lambda: 5, path=path)
    assert NonceAllocator.shared(signer=SIGNER, now_ms=lambda: 5, path=path) is first
    # Anyone else opening the same file (another process, or a second allocator) is refused.
    with pytest.raises(ValueError, match="in use by another allocator"):
        NonceAllocator(signer=SIGNER, now_ms=lambda: 5, path=path)
    first.close()
    again = NonceAllocator(signer=SIGNER, now_ms=lambda: 5, path=path)
    again.close()

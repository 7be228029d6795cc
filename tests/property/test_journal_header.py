"""The journal readers' checksum header (``%``-formatted bytes for integer rows) is exactly the
header the writer checksums (the f-string of ``_event_crc``), for every value a row can hold:
a damaged or forged row must be refused by the checksum exactly as before."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gridcore.shells.journal import _event_header

_CELL = st.one_of(
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.none(),
    st.booleans(),
)


@given(seq=_CELL, ts=_CELL, kind=_CELL)
def test_the_fast_header_equals_the_written_one(seq: Any, ts: Any, kind: Any) -> None:
    assert _event_header(seq, ts, kind, f"{kind}".encode()) == (
        f"event:{seq}:{ts}:{kind}:".encode()
    )

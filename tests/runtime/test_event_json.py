"""`Event.to_json` reusing the producer's data JSON gives the very bytes of the event's
own serialization, for any JSON data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from threadwire.events import Event, NewEvent, dumps

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(
    data=st.dictionaries(st.text(), json_values, max_size=5),
    seq=st.integers(1, 2**53),
    ts=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_reused_data_json_gives_the_same_bytes(
    data: dict[str, Any], seq: int, ts: datetime
) -> None:
    new = NewEvent("evt_1", "thread-abc_1.2:3", "run_x", "token", ts, data, dumps(data))
    with_json = Event.stored(new, seq)
    without = Event("evt_1", "thread-abc_1.2:3", "run_x", seq, "token", ts, data)
    assert with_json.data_json is not None
    assert with_json.to_json() == without.to_json() == dumps(without.to_dict())
    assert with_json == without  # the cache takes no part in equality
    assert with_json.to_dict()["ts"] == ts.strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ts.microsecond // 1000:03d}Z"
    )

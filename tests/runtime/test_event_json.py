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


@given(data=st.dictionaries(st.text(), json_values, max_size=5), seq=st.integers(1, 2**53))
def test_reused_data_json_gives_the_same_bytes(data: dict[str, Any], seq: int) -> None:
    ts = datetime(2026, 11, 25, 10, 0, 0, 123000, tzinfo=UTC)
    new = NewEvent("evt_1", "thread-é", "run_x", "token", ts, data, dumps(data))
    with_json = Event.stored(new, seq)
    without = Event("evt_1", "thread-é", "run_x", seq, "token", ts, data)
    assert with_json.data_json is not None
    assert with_json.to_json() == without.to_json() == dumps(without.to_dict())
    assert with_json == without  # the cache takes no part in equality

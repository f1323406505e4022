"""The bus message codec: an event's JSON wrapped once, refused clearly when foreign."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.bus.helpers import make_events, thread

from threadwire.bus.wire import BadMessage, Envelope, decode_envelope, encode
from threadwire.events import Event


def test_an_event_survives_the_envelope_byte_for_byte() -> None:
    [event] = make_events(thread(), [3], text="ünïcode", items=[1, 2.5, None])
    envelope = decode_envelope(encode(event.to_json(), origin="node-a", sent_at=1764000000.25))
    assert envelope.origin == "node-a"
    assert envelope.sent_at == 1764000000.25
    assert Event.from_dict(envelope.event).to_json() == event.to_json()


@given(origin=st.text(), sent_at=st.floats(allow_nan=False, allow_infinity=False))
def test_any_origin_and_time_round_trip(origin: str, sent_at: float) -> None:
    message = encode(b'{"seq":1}', origin=origin, sent_at=sent_at)
    assert decode_envelope(message) == Envelope(origin, sent_at, {"seq": 1})


@pytest.mark.parametrize("sent_at", [math.nan, math.inf, -math.inf])
def test_a_time_that_json_cannot_carry_is_refused(sent_at: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        encode(b"{}", origin="n", sent_at=sent_at)


@pytest.mark.parametrize(
    "message",
    [
        b"not json",  # not JSON at all
        b"\xff\xfe",  # not UTF-8
        b"[1, 2]",  # JSON, but not an object
        b'{"t": 1, "e": {}}',  # no origin
        b'{"o": 7, "t": 1, "e": {}}',  # origin not a string
        b'{"o": "n", "t": 1}',  # no event
        b'{"o": "n", "t": 1, "e": []}',  # event not an object
        b'{"o": "n", "e": {}}',  # no send time
        b'{"o": "n", "t": "1", "e": {}}',  # send time not a number
        b'{"o": "n", "t": true, "e": {}}',  # a boolean is no time
    ],
)
def test_foreign_messages_are_refused_with_a_quote(message: bytes) -> None:
    with pytest.raises(BadMessage, match="bus message"):
        decode_envelope(message)


def test_the_quote_of_a_long_message_is_cut() -> None:
    with pytest.raises(BadMessage) as caught:
        decode_envelope("x" * 500)
    assert "..." in str(caught.value)
    assert len(str(caught.value)) < 150

"""JSON cut short is closed so masking can read it as JSON, and shown cut again afterwards."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateledger.truncated_json import close, reopen


@pytest.mark.parametrize(("cut", "closed"), [
    ('{"a": 1, "b', '{"a": 1, "b":null}'),
    ('{"a": 1, "b"', '{"a": 1, "b":null}'),
    ('{"a": 1, "b":', '{"a": 1, "b":null}'),
    ('{"a": [1, 2,', '{"a": [1, 2]}'),
    ('{"a": "x\\', '{"a": "x"}'),  # the escaped character was cut off
    ('{"a": "q\\"z', '{"a": "q\\"z"}'),
    ('[{"k": "v"}, ["x", "y', '[{"k": "v"}, ["x", "y"]]'),
])
def test_what_the_cut_left_open_is_closed(cut: str, closed: str) -> None:
    assert close(cut)[0] == closed
    json.loads(closed)


@pytest.mark.parametrize("text", ['{"a": 1}', "[1, 2]", "plain text", '"a string"', "[1, tru", '{"a"}} x', "{]"])
def test_complete_json_or_not_json_is_left_alone(text: str) -> None:
    assert close(text) is None


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(value=st.lists(JSON, min_size=1, max_size=3) | st.dictionaries(st.text(max_size=6), JSON, min_size=1),
       cut=st.floats(0.0, 1.0))
def test_any_cut_closes_to_json_and_reopens_to_the_cut(value, cut: float) -> None:
    text = json.dumps(value, separators=(",", ":"))
    cut_text = text[: max(1, int(len(text) * cut))]
    closed = close(cut_text)
    if cut_text == text:
        assert closed is None
        return
    if closed is None:  # only a literal cut in the middle ("tru", "nul", "-") is given up on
        assert cut_text.rstrip()[-1:] in ("t", "r", "u", "f", "a", "l", "s", "e", "n", "-")
        return
    json.loads(closed[0])
    assert reopen(closed[0], closed[1]) == closed[0][: len(closed[0]) - len(closed[1])]
    assert cut_text.startswith(closed[0][: len(closed[0]) - len(closed[1])])

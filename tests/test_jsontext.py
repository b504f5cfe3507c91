"""The JSON text scanner: depth, NUL and repeated keys named by their path, without recursion."""

from __future__ import annotations

import json

import pytest

from api import params, problems
from ledger import jsontext


def scan(text: str, **kw):
    return jsontext.scan(text.encode(), **kw)


# The fast finder (C decoder and a walk) and the token scanner must agree on NUL and repeated keys.
FINDERS = [pytest.param(jsontext.find, id="find"), pytest.param(jsontext.scan, id="scan")]


def test_depth_is_named_at_the_level_past_the_limit_however_deep_the_text():
    deep = '{"a":' + "[" * 100_000 + "]" * 100_000 + "}"
    found = scan(deep)
    assert found is not None and found.path == "$.a" + "[0]" * (jsontext.MAX_DEPTH - 1)  # the 65th container
    assert "nested deeper than 64 levels" in found.reason
    assert scan("[" * 64 + "]" * 64) is None
    assert scan("[" * 65 + "]" * 65) is not None


def test_brackets_and_quotes_inside_strings_do_not_count():
    assert scan(json.dumps({"a": "[[[[{{{{" * 100, "b": 'x\\"[['}), max_depth=2) is None


@pytest.mark.parametrize("finder", FINDERS)
def test_nul_is_found_in_values_and_keys_but_an_escaped_backslash_is_not_nul(finder):
    assert finder(rb'{"a":[1,{"b":"x\u0000"}]}') == jsontext.Finding(
        "$.a[1].b", "text must not contain the NUL character (\\u0000)")
    assert finder(rb'{"a\u0000":1}').path == '$["a\\u0000"]'
    assert finder(rb'{"a":"\\u0000"}') is None


@pytest.mark.parametrize("finder", FINDERS)
def test_repeated_keys_are_found_after_unescaping_only_when_asked(finder):
    text = rb'{"m":[{"k":1},{"k":1,"x":{"y":[]},"\u006b":2}]}'
    assert finder(text) is None
    assert finder(text, duplicates=True) == jsontext.Finding("$.m[1].k", 'the key "k" is repeated in its object')
    assert finder(rb'{"a":{"k":1},"b":{"k":1}}', duplicates=True) is None


@pytest.mark.parametrize("finder", FINDERS)
def test_array_indexes_follow_nested_containers(finder):
    assert finder(b'[[], {}, [1, 2, "\\u0000"]]').path == "$[2][2]"


@pytest.mark.parametrize("finder", FINDERS)
def test_malformed_text_is_left_to_the_decoder(finder):
    assert finder(b'{"a": "unterminated') is None
    assert finder(b"]]]") is None


def test_a_repeated_key_too_deep_for_the_c_decoder_is_still_found():
    text = b'{"a":' + b"[" * 5000 + b'{"k":1,"k":2}' + b"]" * 5000 + b"}"
    found = jsontext.find(text, duplicates=True)
    assert found is not None and found.path.endswith("[0].k")


@pytest.mark.parametrize("raw", [str(2**63), "9" * 5000, "-1", "1_0", " ", "0x10", "\u0661\u0662", "+1", "1.0"])
def test_integer_parameters_are_ascii_digits_within_their_bound(raw):
    if raw.strip() == "":
        return
    with pytest.raises(problems.Problem) as caught:
        params.parse("after", raw, params.POSITION)
    assert caught.value.status == 422 and caught.value.field == "after"
    assert len(caught.value.detail) < 200


def test_integer_parameters_at_their_bounds_are_accepted():
    assert params.parse("after", str(2**63 - 1), params.POSITION) == 2**63 - 1
    assert params.parse("from_version", str(2**31 - 1), params.VERSION) == 2**31 - 1
    assert params.parse("limit", " 7 ", params.PAGE) == 7

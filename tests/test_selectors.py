from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.selectors import (
    InvalidInput,
    LabelError,
    Operator,
    Requirement,
    Selector,
    SelectorError,
    parse,
    validate_labels,
)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("", {}, True),
        ("", {"x": "y"}, True),
        ("x=y", {"x": "y"}, True),
        ("x==y", {"x": "y"}, True),
        ("x=y", {"x": "z"}, False),
        ("x=z", {}, False),
        ("x=y,z=w", {"x": "y", "z": "w"}, True),
        ("x=y,z=w", {"x": "w", "z": "w"}, False),
        ("x!=y,z!=w", {"x": "z", "z": "a"}, True),
        ("x!=y,z!=w", {"x": "z", "z": "w"}, False),
        ("x!=y", {}, True),
        ("x in (a,b)", {"x": "b"}, True),
        ("x in (a,b)", {"x": "c"}, False),
        ("x in (a,b)", {}, False),
        ("x notin (a,b)", {"x": "c"}, True),
        ("x notin (a,b)", {"x": "a"}, False),
        ("x notin (a,b)", {}, True),
        ("x", {"x": ""}, True),
        ("x", {"y": "z"}, False),
        ("!x", {"y": "z"}, True),
        ("!x", {"x": "z"}, False),
        ("x=", {"x": ""}, True),
        ("x in ()", {"x": ""}, True),
        ("x in ()", {"x": "a"}, False),
        ("notin=in", {"notin": "in"}, True),
        ("x>1", {"x": "2"}, True),
        ("x>1", {"x": "1"}, False),
        ("x<1", {"x": "0"}, True),
        ("x<1", {"x": "2"}, False),
        ("x>1", {}, False),
        ("x>1", {"x": "two"}, False),
        ("x<1", {"x": "-5"}, True),
        ("x>1", {"x": "99999999999999999999"}, False),
        ("app.kubernetes.io/name=web", {"app.kubernetes.io/name": "web"}, True),
    ],
)
def test_matches_like_kubernetes(text: str, labels: Mapping[str, str], expected: bool) -> None:
    assert parse(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", ""),
        ("\rx", "x"),
        ("this-is-a-dns.domain.com/key-with-dash", "this-is-a-dns.domain.com/key-with-dash"),
        (
            "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
            "0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)",
        ),
        ("foo  in\t (abc)", "foo in (abc)"),
        ("x notin\n (abc)", "x notin (abc)"),
        ("x in (abc,)", "x in (,abc)"),
        ("x in ()", "x in ()"),
        ("x notin ( )", "x notin ()"),
        ("x notin (, a)", "x notin (,a)"),
        ("x notin (abc,,def),bar,z in (),w", "bar,w,x notin (,abc,def),z in ()"),
        ("a in (x,y,notin, z,in)", "a in (in,notin,x,y,z)"),
        ("a ", "a"),
        ("x= ,z= ", "x=,z="),
        ("z=1, y!=2, x==3", "x=3,y!=2,z=1"),
        ("b in (z,a,z), a notin (y,x)", "a notin (x,y),b in (a,z)"),
        ("x>1,x<5", "x<5,x>1"),
        ("!b, a", "a,!b"),
        ("a=b, a=b, a==b", "a=b"),
        ("in in (in), notin", "in in (in),notin"),
    ],
)
def test_canonical_string(text: str, canonical: str) -> None:
    selector = parse(text)
    assert str(selector) == canonical
    assert parse(canonical) == selector


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("app in (web,db", 'expected ")"', 14),
        ("a in (", 'expected ")"', 6),
        ("a notin(", 'expected ")"', 8),
        ("a in (x,", 'expected ")"', 8),
        ("a in (xyz abc)", 'expected "," or ")"', 10),
        ("a in (,,)", 'expected label value or ","', 8),
        ("a in (=)", 'expected label value, "," or ")"', 6),
        ("a in b", 'expected "("', 5),
        ("a (", 'expected operator ("=", "==", "!=", "in", "notin", ">" or "<")', 2),
        ("x nott in (y)", 'expected operator ("=", "==", "!=", "in", "notin", ">" or "<")', 2),
        ("(", 'expected label key or "!"', 0),
        ("x,,y", 'expected label key or "!"', 2),
        (",x,y", 'expected label key or "!"', 0),
        ("a in (xyz),", 'expected label key or "!"', 11),
        ("a in (xyz)b notin ()", 'expected "," or end of selector', 10),
        ("x==a==b", 'expected "," or end of selector', 4),
        ("!x=a", 'expected "," or end of selector', 2),
        ("!", "expected label key", 1),
        ("!!x", "expected label key", 1),
        ("x=(a)", "expected label value", 2),
        ("x<a", 'invalid value "a" for "<": must be an integer', 2),
        ("x>", 'invalid value "" for ">": must be an integer', 2),
    ],
)
def test_syntax_errors(text: str, message: str, position: int) -> None:
    with pytest.raises(SelectorError) as caught:
        parse(text)
    assert caught.value.message == message
    assert caught.value.position == position
    assert str(caught.value) == f"{message} at position {position}"


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("Bad_=x", 0, 'invalid label key "Bad_"'),
        ("ok=1, -bad", 6, 'invalid label key "-bad"'),
        ("a/b/c", 0, "one '/'"),
        ("/a", 0, "prefix part must not be empty"),
        ("a/", 0, "name part must not be empty"),
        ("Example.com/a", 0, "prefix part must be a lowercase RFC 1123 subdomain"),
        ("x" * 64, 0, "name part must be no more than 63 characters"),
        ("a=" + "v" * 64, 2, "must be no more than 63 characters"),
        ("a in (ok, bad_)", 10, 'invalid label value "bad_"'),
        ("x=a||y=b", 2, 'invalid label value "a||y"'),
        ("a=é", 2, 'invalid label value "é"'),
        ("a=b\x00", 2, 'invalid label value "b\x00"'),
        ("a=b\u00a0c", 2, "invalid label value"),
        ("a>-1", 2, 'invalid label value "-1"'),
    ],
)
def test_invalid_keys_and_values(text: str, position: int, fragment: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse(text)
    assert caught.value.position == position
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("Bad_=x, app in (a", 0),
        ("a in (-x, ", 6),
        ("a=b, c in (d e", 13),
        ("a=1,,Bad_", 4),
        ("!Bad_=x", 1),
    ],
)
def test_leftmost_error_wins(text: str, position: int) -> None:
    with pytest.raises(SelectorError) as caught:
        parse(text)
    assert caught.value.position == position


def test_error_is_an_invalid_input_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse("a in (", field="target.selector")
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == "target.selector"
    assert SelectorError("m", 3).field == "selector"


def test_selector_structure() -> None:
    selector = parse("tier notin (db), app in (web,api), !legacy, env")
    assert not selector.is_empty
    assert parse("  ").is_empty
    assert selector.requirements == (
        Requirement("app", Operator.IN, ("api", "web")),
        Requirement("env", Operator.EXISTS),
        Requirement("legacy", Operator.DOES_NOT_EXIST),
        Requirement("tier", Operator.NOT_IN, ("db",)),
    )
    with pytest.raises(AttributeError):
        selector.requirements[0].key = "other"  # type: ignore[misc]
    assert hash(selector) == hash(parse(str(selector)))
    assert Selector().matches({"anything": "x"})


def test_validate_labels() -> None:
    validate_labels({"app.kubernetes.io/name": "web", "tier": "", "x": "A-1_b.c"})
    with pytest.raises(LabelError) as caught:
        validate_labels({"ok": "1", "bad key": "v"})
    assert caught.value.key == "bad key"
    assert caught.value.field == 'labels["bad key"]'
    assert "invalid label key" in caught.value.message
    with pytest.raises(LabelError) as caught:
        validate_labels({"tier": "-front"}, field="target.labels")
    assert caught.value.field == "target.labels.tier"
    assert "invalid label value" in caught.value.message
    with pytest.raises(LabelError, match="must be strings"):
        validate_labels({"replicas": 3})  # type: ignore[dict-item]


_NAME = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", fullmatch=True)
_DNS_LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True)
_KEYS = st.one_of(
    _NAME,
    st.builds("{}/{}".format, st.lists(_DNS_LABEL, min_size=1, max_size=3).map(".".join), _NAME),
)
_VALUES = st.one_of(st.just(""), _NAME)
_INTEGERS = st.integers(min_value=0, max_value=10**6).map(str)
_SPACE = st.sampled_from(["", " ", "  ", "\t", "\n"])


@st.composite
def _requirement_texts(
    draw: st.DrawFn, keys: st.SearchStrategy[str]
) -> tuple[str, str, tuple[str, ...], str]:
    key = draw(keys)
    op = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!", ">", "<"]))
    space = draw(_SPACE)
    if op == "exists":
        return key, op, (), key
    if op == "!":
        return key, op, (), f"!{space}{key}"
    if op in ("in", "notin"):
        values = tuple(draw(st.lists(_NAME | _INTEGERS, min_size=1, max_size=4)))
        joined = f",{space}".join(values)
        return key, op, values, f"{key} {op}{space}({space}{joined}{space})"
    values = (draw(_INTEGERS if op in (">", "<") else _VALUES),)
    return key, op, values, f"{key}{space}{op}{space}{values[0]}"


def _oracle(key: str, op: str, values: tuple[str, ...], labels: Mapping[str, str]) -> bool:
    present = key in labels
    if op in ("=", "==", "in"):
        return present and labels[key] in values
    if op in ("!=", "notin"):
        return not present or labels[key] not in values
    if op == "exists":
        return present
    if op == "!":
        return not present
    if not present or not labels[key].isdigit():
        return False
    return int(labels[key]) > int(values[0]) if op == ">" else int(labels[key]) < int(values[0])


@given(st.data())
def test_parse_agrees_with_an_independent_oracle(data: st.DataObject) -> None:
    pool = data.draw(st.lists(_KEYS, min_size=1, max_size=4, unique=True))
    terms = data.draw(st.lists(_requirement_texts(st.sampled_from(pool)), max_size=5))
    text = ",".join(term for *_, term in terms)
    labels = data.draw(st.dictionaries(st.sampled_from(pool), _VALUES | _INTEGERS))
    selector = parse(text)
    assert selector.matches(labels) == all(_oracle(k, op, v, labels) for k, op, v, _ in terms)


@given(st.lists(_requirement_texts(_KEYS), max_size=6))
def test_canonical_string_round_trips(terms: list[tuple[str, str, tuple[str, ...], str]]) -> None:
    selector = parse(",".join(term for *_, term in terms))
    assert parse(str(selector)) == selector
    assert str(parse(str(selector))) == str(selector)
    keys = [requirement.key for requirement in selector.requirements]
    assert keys == sorted(keys)


@given(st.permutations(["a=1", "b in (x,y)", "!c", "d", "e!=2", "f notin (z)"]))
def test_order_of_requirements_does_not_matter(terms: list[str]) -> None:
    assert parse(",".join(terms)) == parse("a=1,b in (x,y),!c,d,e!=2,f notin (z)")


@given(st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=8))
def test_selector_built_from_labels_matches_them(labels: dict[str, str]) -> None:
    selector = parse(",".join(f"{key}={value}" for key, value in labels.items()))
    assert selector.matches(labels)
    assert selector.matches({**labels, "extra.example/other": "x"})
    key = next(iter(labels))
    assert not selector.matches({k: v for k, v in labels.items() if k != key})


@given(st.dictionaries(_KEYS, _VALUES, min_size=1), st.data())
def test_does_not_exist_never_matches_a_set_containing_the_key(
    labels: dict[str, str], data: st.DataObject
) -> None:
    key = data.draw(st.sampled_from(sorted(labels)))
    assert not parse(f"!{key}").matches(labels)
    assert parse(key).matches(labels)


@given(st.text(alphabet=st.sampled_from(list("ab=!(),<> \tinot1-_./Z")), max_size=30))
def test_arbitrary_text_either_parses_or_raises_selector_error(text: str) -> None:
    try:
        selector = parse(text)
    except SelectorError as error:
        assert 0 <= error.position <= len(text)
    else:
        assert parse(str(selector)) == selector


@given(st.text(max_size=30))
def test_arbitrary_unicode_never_crashes(text: str) -> None:
    try:
        parse(text)
    except SelectorError as error:
        assert 0 <= error.position <= len(text)

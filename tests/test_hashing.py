"""The canonical encoding: the fast msgspec path must give exactly the documented json.dumps bytes,
and what the writer hashes must be what a verifier re-reads from PostgreSQL's jsonb."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import hashing, records
from tests import chain

# PostgreSQL's jsonb cannot hold NUL in text and JSON cannot carry lone surrogates; the API refuses both.
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)
documents = st.dictionaries(texts, json_values, max_size=6)


def documented(doc_data, metadata) -> bytes:
    doc = {"data": doc_data, "id": "6f1c1d2e-3b7a-5c55-9a51-6c6564676572", "metadata": metadata, "position": 7,
           "recorded_at": "2026-11-27T08:00:00.000001Z", "stream": "deployment-web", "type": "DeploymentPaused",
           "version": 3}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@given(documents, documents)
def test_canonical_bytes_are_the_documented_json_dumps_bytes(data, metadata):
    data, data_text, data_canonical = hashing.normalize(data)
    metadata, _, meta_canonical = hashing.normalize(metadata)
    ours = hashing.canonical(position=7, stream="deployment-web", version=3,
                             id="6f1c1d2e-3b7a-5c55-9a51-6c6564676572", type="DeploymentPaused", data=data,
                             metadata=metadata, recorded_at="2026-11-27T08:00:00.000001Z")
    assert ours == documented(data, metadata)
    assert json.loads(data_text) == data
    # The writer's assembly from parts gives the same bytes.
    head = hashing.canonical_head(data_canonical, uuid.UUID("6f1c1d2e-3b7a-5c55-9a51-6c6564676572"), meta_canonical)
    middle = hashing.canonical_middle("2026-11-27T08:00:00.000001Z", "deployment-web")
    assert hashing.canonical_join(head, 7, middle, hashing.json_string("DeploymentPaused"), 3) == ours


@given(texts)
def test_assembled_canonical_bytes_quote_any_stream_name_like_json_dumps(stream):
    head = hashing.canonical_head(b"{}", uuid.UUID(int=1), b"{}")
    joined = hashing.canonical_join(head, 1, hashing.canonical_middle("2026-11-27T08:00:00.000001Z", stream),
                                    hashing.json_string(stream), 1)
    assert joined == hashing.canonical(position=1, stream=stream, version=1, id=uuid.UUID(int=1), type=stream,
                                       data={}, metadata={}, recorded_at="2026-11-27T08:00:00.000001Z")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(json_values, min_size=1, max_size=5))
async def test_stored_events_verify_after_a_jsonb_round_trip(store, db, values):
    events = [records.NewEvent(uuid.uuid4(), "DeploymentPaused", {"deployment": "web", "reason": "x",
                                                                  "extra": v}) for v in values]
    # The catalogue forbids unknown fields at the HTTP edge; the store itself takes any JSON data.
    await store.append("deployment-web", "any", events)
    await chain.check_log(db)


def test_awkward_floats_are_stored_as_jsonb_prints_them():
    data, text, canonical = hashing.normalize({"big": 1e20, "zero": -0.0, "small": 1.5e-7, "s": "1e5"})
    assert data == {"big": 10**20, "zero": 0.0, "small": 1.5e-7, "s": "1e5"}
    assert isinstance(data["big"], int)
    assert json.loads(text) == data
    # msgspec writes 1.5e-7 otherwise; the canonical bytes are json.dumps' own.
    assert canonical == b'{"big":100000000000000000000,"s":"1e5","small":1.5e-07,"zero":0.0}'


def test_times_are_written_in_the_canonical_form():
    moment = dt.datetime(2026, 11, 27, 9, 5, 3, 7, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert hashing.format_time(moment) == "2026-11-27T07:05:03.000007Z"
    whole = moment.replace(microsecond=0)  # isoformat drops a zero fraction unless told not to
    assert hashing.format_time(whole) == whole.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


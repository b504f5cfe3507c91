"""Request/response body (de)serialisation.

The API speaks JSON, except that server-side apply bodies may be YAML.  JSON
is handled by msgspec because the emulator is meant to sustain benchmarks with
thousands of clusters; YAML falls back to PyYAML (C loader when available).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import yaml

from emulator.status import bad_request

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()

_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def clone(value: Any) -> Any:
    """Deep copy of a JSON-shaped value; several times faster than copy.deepcopy.

    Also normalises non-JSON values (tuples, YAML dates) to their JSON form.
    """
    return _decoder.decode(_encoder.encode(value))


def clone_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`clone` for an object (typed for callers that need a dict back)."""
    result: dict[str, Any] = clone(value)
    return result


def decode_json(data: bytes) -> Any:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise bad_request(f"the body of the request could not be decoded as JSON: {exc}") from exc


def decode_yaml_or_json(data: bytes) -> Any:
    """Apply bodies: JSON is valid YAML, but try the fast JSON path first."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError:
        pass
    try:
        value = yaml.load(data, Loader=_YamlLoader)
        return clone(value)  # YAML timestamps etc. become JSON strings, as on a real server
    except (yaml.YAMLError, TypeError, msgspec.EncodeError) as exc:
        raise bad_request(f"error converting YAML to JSON: {exc}") from exc


def decode_object(data: bytes, *, yaml_allowed: bool) -> dict[str, Any]:
    """Decode a body that must be a single JSON/YAML object."""
    if not data.strip():
        raise bad_request("the body of the request was empty")
    value = decode_yaml_or_json(data) if yaml_allowed else decode_json(data)
    if not isinstance(value, dict):
        raise bad_request("the body of the request must be an object")
    return value

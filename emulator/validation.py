"""Object validation that a real API server performs before storing anything.

Only the checks a deployment tool is likely to trip over are implemented:
object names (DNS-1123 subdomain, or label for namespaces and services),
label keys/values, string-valued maps (labels, annotations, ConfigMap data),
base64 Secret data, and the structural requirements of workloads (selector
matching the pod template, at least one container).  Type errors that a real
server reports while decoding are 400 BadRequest; semantic problems are 422
Invalid with per-field ``causes``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from emulator.catalog import ResourceType
from emulator.selectors import label_key_problem, label_value_problem
from emulator.status import bad_request, invalid

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

_SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def _cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def name_problem(rt: ResourceType, name: str) -> str | None:
    """Why ``name`` is not acceptable as a name for ``rt`` objects (None if fine)."""
    if rt.name_rule == "label":
        if len(name) > 63:
            return "must be no more than 63 characters"
        return None if DNS1123_LABEL.match(name) else _LABEL_HELP
    if len(name) > 253:
        return "must be no more than 253 characters"
    return None if DNS1123_SUBDOMAIN.match(name) else _SUBDOMAIN_HELP


def check_name(rt: ResourceType, name: str) -> None:
    problem = name_problem(rt, name)
    if problem:
        raise invalid(rt, name, [_cause("metadata.name", f'Invalid value: "{name}": {problem}')])


def _string_map(value: Any, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise bad_request(
            f"json: cannot unmarshal {type(value).__name__} into Go struct field {field} of type map[string]string"
        )
    for key, item in value.items():
        if not isinstance(item, str):
            raise bad_request(
                f"json: cannot unmarshal {type(item).__name__} into Go struct field {field} of type string (key {key!r})"
            )


def check_types(rt: ResourceType, obj: Mapping[str, Any]) -> None:
    """Decode-time checks: these are 400 BadRequest on a real server."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise bad_request("Object 'metadata' is missing or is not an object")
    _string_map(meta.get("labels"), "ObjectMeta.metadata.labels")
    _string_map(meta.get("annotations"), "ObjectMeta.metadata.annotations")
    if rt.kind == "ConfigMap":
        _string_map(obj.get("data"), "ConfigMap.data")
        _string_map(obj.get("binaryData"), "ConfigMap.binaryData")
    if rt.kind == "Secret":
        _string_map(obj.get("stringData"), "Secret.stringData")
        _string_map(obj.get("data"), "Secret.data")
        for key, item in (obj.get("data") or {}).items():
            try:
                base64.b64decode(item, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise bad_request(f"illegal base64 data in Secret.data[{key!r}]: {exc}") from exc


def _workload_causes(rt: ResourceType, obj: Mapping[str, Any]) -> list[dict[str, str]]:
    causes: list[dict[str, str]] = []
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return [_cause("spec", "Required value", "FieldValueRequired")]
    template = spec.get("template")
    template_meta = template.get("metadata") if isinstance(template, Mapping) else None
    template_labels = (template_meta or {}).get("labels") or {} if isinstance(template_meta, Mapping) else {}
    if rt.kind in ("Deployment", "StatefulSet", "DaemonSet"):
        selector = spec.get("selector")
        if not isinstance(selector, Mapping) or not (
            selector.get("matchLabels") or selector.get("matchExpressions")
        ):
            causes.append(_cause("spec.selector", "Required value", "FieldValueRequired"))
        else:
            match_labels = selector.get("matchLabels") or {}
            if any(template_labels.get(k) != v for k, v in match_labels.items()):
                causes.append(
                    _cause(
                        "spec.template.metadata.labels",
                        f"Invalid value: {dict(template_labels)!r}: `selector` does not match template `labels`",
                    )
                )
    pod_spec = template.get("spec") if isinstance(template, Mapping) else None
    containers = pod_spec.get("containers") if isinstance(pod_spec, Mapping) else None
    if not containers:
        causes.append(_cause("spec.template.spec.containers", "Required value", "FieldValueRequired"))
    if rt.kind == "Job" and isinstance(pod_spec, Mapping):
        if pod_spec.get("restartPolicy") not in ("OnFailure", "Never"):
            causes.append(
                _cause(
                    "spec.template.spec.restartPolicy",
                    'Required value: valid values: "OnFailure", "Never"',
                    "FieldValueRequired",
                )
            )
    return causes


def check_object(rt: ResourceType, obj: Mapping[str, Any]) -> None:
    """Semantic validation of a complete object about to be stored (422 Invalid)."""
    meta = obj["metadata"]
    name = str(meta.get("name", ""))
    causes: list[dict[str, str]] = []
    problem = name_problem(rt, name)
    if problem:
        causes.append(_cause("metadata.name", f'Invalid value: "{name}": {problem}'))
    for key, value in (meta.get("labels") or {}).items():
        key_problem = label_key_problem(key)
        if key_problem:
            causes.append(_cause("metadata.labels", f'Invalid value: "{key}": {key_problem}'))
        value_problem = label_value_problem(value)
        if value_problem:
            causes.append(_cause("metadata.labels", f'Invalid value: "{value}": {value_problem}'))
    for key in meta.get("annotations") or {}:
        key_problem = label_key_problem(key)
        if key_problem:
            causes.append(_cause("metadata.annotations", f'Invalid value: "{key}": {key_problem}'))
    if rt.group in ("apps", "batch"):
        causes.extend(_workload_causes(rt, obj))
    if rt.kind == "Pod":
        spec = obj.get("spec")
        if not isinstance(spec, Mapping) or not spec.get("containers"):
            causes.append(_cause("spec.containers", "Required value", "FieldValueRequired"))
    if causes:
        raise invalid(rt, name, causes)

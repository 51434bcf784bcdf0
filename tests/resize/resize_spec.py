"""Hetzner's spec for the resize tests: the trimmed copy plus the one path it lacks
(POST /servers/{id}/actions/change_type), grafted from Hetzner's full spec with the trimmed
copy's fix-ups (see ../shared/specs/trimmed/README.md)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from openapi_core import OpenAPI

from tests.vendor_spec import SHARED, TRIMMED

CHANGE_TYPE = "/servers/{id}/actions/change_type"


def _fixed(node: Any) -> Any:
    """`4xx` response keys spelled `4XX`; `{allOf: [X], nullable: true}` as `anyOf[X, null]`."""
    if isinstance(node, list):
        return [_fixed(item) for item in node]
    if not isinstance(node, dict):
        return node
    fixed = {
        {"4xx": "4XX", "5xx": "5XX"}.get(key, key): _fixed(value) for key, value in node.items()
    }
    if fixed.get("nullable") is True and "allOf" in fixed:
        rest = {k: v for k, v in fixed.items() if k not in ("allOf", "nullable")}
        return {**rest, "anyOf": [{"allOf": fixed["allOf"]}, {"enum": [None]}]}
    return fixed


def _refs(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {node["$ref"].rsplit("/", 1)[1]} if isinstance(node.get("$ref"), str) else set()
    return found.union(*(_refs(value) for value in node.values()))


@cache
def hetzner_openapi_with_change_type() -> OpenAPI:
    """The trimmed Hetzner spec with change_type and the components it needs."""
    spec = json.loads((TRIMMED / "hetzner.json").read_text())
    full = json.loads((SHARED / "specs" / "hetzner" / "hcloud.json").read_text())
    path = {key: value for key, value in full["paths"][CHANGE_TYPE].items() if key != "servers"}
    spec["paths"][CHANGE_TYPE] = _fixed(path)
    schemas = spec["components"]["schemas"]
    pending = _refs(spec["paths"][CHANGE_TYPE])
    while pending:
        name = pending.pop()
        if name not in schemas:
            schemas[name] = _fixed(full["components"]["schemas"][name])
            pending |= _refs(schemas[name])
    spec["servers"] = [{"url": "http://vendor.test/v1"}]
    return OpenAPI.from_dict(spec)

"""Cloudflare's batch endpoint, which the stored 2024-08-06 spec predates (it shipped in
September 2024), written as an OpenAPI path item over that spec's own components so the batch
exchanges are validated like every other one.

Its shape follows Cloudflare's published reference for "Batch DNS Records"
(developers.cloudflare.com/api/resources/dns/subresources/records/methods/batch, and the
generated `RecordBatchParams` / `RecordBatchResponse` of cloudflare-python): `deletes` are
`{id}`; `patches` are an id plus a partial record; `puts` an id plus a whole record; `posts`
whole records; the answer's `result` holds the records of each list.
"""

from __future__ import annotations

from typing import Any

PATH = "/zones/{zone_id}/dns_records/batch"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _with_id(schema: str) -> dict[str, Any]:
    return {
        "allOf": [
            _ref(schema),
            {
                "type": "object",
                "required": ["id"],
                "properties": {"id": _ref("dns-records_identifier")},
            },
        ]
    }


def _records() -> dict[str, Any]:
    return {"type": "array", "items": _ref("dns-records_dns-record")}


REQUEST = {
    "type": "object",
    "properties": {
        "deletes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": _ref("dns-records_identifier")},
            },
        },
        "patches": {"type": "array", "items": _with_id("world_dns-record-patch")},
        "puts": {"type": "array", "items": _with_id("world_dns-record-request")},
        "posts": {"type": "array", "items": _ref("world_dns-record-request")},
    },
}

RESPONSE = {
    "allOf": [
        _ref("dns-records_api-response-common"),
        {
            "type": "object",
            "properties": {
                "result": {
                    "type": "object",
                    "properties": {
                        key: _records() for key in ("deletes", "patches", "puts", "posts")
                    },
                }
            },
        },
    ]
}

BATCH_PATH_ITEM: dict[str, Any] = {
    "post": {
        "operationId": "dns-records-for-a-zone-batch-dns-records",
        "parameters": [
            {
                "in": "path",
                "name": "zone_id",
                "required": True,
                "schema": _ref("dns-records_identifier"),
            }
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": REQUEST}}},
        "responses": {
            "200": {
                "description": "Batch DNS Records response",
                "content": {"application/json": {"schema": RESPONSE}},
            },
            "4XX": {
                "description": "Batch DNS Records response failure",
                "content": {
                    "application/json": {"schema": _ref("dns-records_api-response-common-failure")}
                },
            },
        },
        "security": [{"api_token": []}, {"api_email": [], "api_key": []}],
    }
}


def spec_with_batch(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` (the trimmed Cloudflare document) with the batch path added."""
    spec["paths"].setdefault(PATH, BATCH_PATH_ITEM)
    return spec

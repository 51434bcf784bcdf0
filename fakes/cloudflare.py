"""A stateful fake of Cloudflare's DNS records API (v4), answering in Cloudflare's shapes.

Records live in memory per zone. It lists with the `name`/`type`/`content` filters and
pagination, creates, patches and deletes, one by one or in a batch (`POST .../batch`: deletes,
patches, puts, posts in that order, all or nothing, as Cloudflare runs them), and refuses like
Cloudflare: 81058 for an identical record, 81053 for a CNAME beside an address, 81044 for an
unknown record, 9005/9021 for bad content or ttl, 401/10000 without the right Bearer token,
429/10429 with Retry-After while `rate_limited_times > 0`. Scripted failures and lost answers
come from FakeVendor.inject().

Records are indexed by name, and a listing without a name is computed once per zone version,
so listing a zone of 20,000 records page by page stays fast.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from datetime import UTC, datetime
from typing import Any

import httpx

from fakes import FakeVendor

ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353"
ZONE_NAME = "example.com"
TOKEN = "cf-test-token"  # noqa: S105  (the fake's own token, not a credential)
MAX_PER_PAGE = 5_000_000
# Changes per batch call on the Free plan (Pro and above: 3,500).
BATCH_LIMIT = 200
BATCH_KEYS = ("deletes", "patches", "puts", "posts")
PROXIABLE_TYPES = {"A", "AAAA", "CNAME"}
# A CNAME cannot share its name with an address or another CNAME.
CNAME_EXCLUSIVE = {"A", "AAAA", "CNAME"}

_RECORDS = re.compile(
    r"^(?:/client/v4)?/zones/(?P<zone>[^/]+)/dns_records(?:/(?P<record>[^/]+))?/?$"
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def failure(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """An error answer in Cloudflare's envelope."""
    body = {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }
    return httpx.Response(status, json=body, headers=headers)


def success(result: Any, result_info: dict[str, int] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return httpx.Response(200, json=body)


class FakeCloudflare(FakeVendor):
    """Cloudflare's DNS API for the zones given (id -> name), with records in memory."""

    def __init__(self, *, token: str = TOKEN, zones: dict[str, str] | None = None) -> None:
        super().__init__()
        self.token = token
        self.zones = dict(zones or {ZONE_ID: ZONE_NAME})
        self.records: dict[str, dict[str, dict[str, Any]]] = {zone: {} for zone in self.zones}
        # name -> ids at that name (insertion-ordered), per zone; rebuilt after a failed batch
        self._by_name: dict[str, dict[str, dict[str, None]]] = {zone: {} for zone in self.zones}
        self._version = 0  # bumped by every write: a cached listing of an older one is stale
        self._listed: tuple[tuple[object, ...], list[dict[str, Any]]] | None = None
        self.rate_limited_times = 0
        self.retry_after = 30
        self._rays = 0

    # --- seeding and inspection for tests -------------------------------------------------
    def add_record(self, zone_id: str = ZONE_ID, **fields: Any) -> dict[str, Any]:
        """Put a record in the zone directly (no request logged, no duplicate check)."""
        record = self._shape(zone_id, fields)
        self._store(zone_id, record)
        return record

    def zone_records(self, zone_id: str = ZONE_ID) -> list[dict[str, Any]]:
        return list(self.records[zone_id].values())

    def writes(self) -> list[httpx.Request]:
        """Requests that could change the zone (POST, PUT, PATCH, DELETE)."""
        return [r for r in self.requests if r.method in {"POST", "PUT", "PATCH", "DELETE"}]

    # --- routing --------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        response = super().handle(request)
        self._rays += 1
        response.headers["cf-ray"] = f"{self._rays:016x}-FRA"
        return response

    def route(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return failure(401, 10000, "Authentication error")
        if self.rate_limited_times > 0:
            self.rate_limited_times -= 1
            # Cloudflare answers 971 or 10429 here; the published schema allows codes >= 1000.
            return failure(
                429,
                10429,
                "Rate limited. Please wait and consider throttling your request speed",
                headers={"Retry-After": str(self.retry_after)},
            )
        match = _RECORDS.match(request.url.path)
        if match is None or match["zone"] not in self.zones:
            return failure(
                404,
                7003,
                f"Could not route to {request.url.path}, perhaps your "
                "object identifier is invalid?",
            )
        zone, record_id = match["zone"], match["record"]
        if record_id == "batch" and request.method == "POST":
            return self._batch(request, zone, None)
        handlers = {
            (False, "GET"): self._list,
            (False, "POST"): self._create,
            (True, "GET"): self._get,
            (True, "PATCH"): self._patch,
            (True, "PUT"): self._put,
            (True, "DELETE"): self._delete,
        }
        handler = handlers.get((record_id is not None, request.method))
        if handler is None:
            return failure(405, 10405, "Method not allowed for this endpoint")
        return handler(request, zone, record_id)

    def _list(self, request: httpx.Request, zone: str, _: str | None) -> httpx.Response:
        params = request.url.params
        try:
            page = int(params.get("page", 1))
            per_page = int(params.get("per_page", 100))
        except ValueError:
            return failure(400, 1004, "DNS Validation Error: page and per_page must be numbers")
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            return failure(400, 1004, "DNS Validation Error: page or per_page out of range")
        found = self._found(zone, params)
        start = (page - 1) * per_page
        result = found[start : start + per_page]
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(result),
            "total_count": len(found),
            "total_pages": max(-(-len(found) // per_page), 1),
        }
        return success(result, info)

    def _found(self, zone: str, params: httpx.QueryParams) -> list[dict[str, Any]]:
        """The records a listing's filters select, from the name index when a name is given,
        else from the zone once per version (the pages of one listing share it)."""
        name = params.get("name")
        if name is not None:
            ids = self._by_name[zone].get(name.rstrip(".").lower(), {})
            return [self.records[zone][i] for i in ids if _listed(self.records[zone][i], params)]
        key = (zone, self._version, params.get("type"), params.get("content"))
        if self._listed is None or self._listed[0] != key:
            found = [r for r in self.records[zone].values() if _listed(r, params)]
            self._listed = (key, found)
        return self._listed[1]

    def _get(self, request: httpx.Request, zone: str, record_id: str | None) -> httpx.Response:
        record = self.records[zone].get(record_id or "")
        return success(record) if record else _not_found()

    def _create(self, request: httpx.Request, zone: str, _: str | None) -> httpx.Response:
        made = self._post(zone, _body(request))
        return made if isinstance(made, httpx.Response) else success(made)

    def _patch(self, request: httpx.Request, zone: str, record_id: str | None) -> httpx.Response:
        done = self._patched(zone, record_id or "", _body(request))
        return done if isinstance(done, httpx.Response) else success(done)

    def _put(self, request: httpx.Request, zone: str, record_id: str | None) -> httpx.Response:
        done = self._replaced(zone, record_id or "", _body(request))
        return done if isinstance(done, httpx.Response) else success(done)

    def _delete(self, request: httpx.Request, zone: str, record_id: str | None) -> httpx.Response:
        gone = self._deleted(zone, record_id or "")
        return gone if isinstance(gone, httpx.Response) else success({"id": record_id})

    def _batch(self, request: httpx.Request, zone: str, _: str | None) -> httpx.Response:
        """Deletes, patches, puts, posts, in that order; the first refusal undoes them all."""
        body = _body(request)
        if body is None or not all(isinstance(body.get(key, []), list) for key in BATCH_KEYS):
            return failure(400, 9207, "Request body is invalid.")
        if sum(len(body.get(key, [])) for key in BATCH_KEYS) > BATCH_LIMIT:
            return failure(400, 1004, f"DNS Validation Error: more than {BATCH_LIMIT} changes")
        before = dict(self.records[zone])
        steps = {
            "deletes": lambda item: self._deleted(zone, str(item.get("id", ""))),
            "patches": lambda item: self._patched(zone, str(item.get("id", "")), _fields(item)),
            "puts": lambda item: self._replaced(zone, str(item.get("id", "")), _fields(item)),
            "posts": lambda item: self._post(zone, item),
        }
        result: dict[str, list[dict[str, Any]]] = {key: [] for key in BATCH_KEYS}
        for key in BATCH_KEYS:
            for item in body.get(key, []):
                done = steps[key](item if isinstance(item, dict) else {})
                if isinstance(done, httpx.Response):
                    self._restore(zone, before)
                    return done
                result[key].append(done)
        return success(result)

    # --- the zone's writes, each a record or the refusal --------------------------------------
    def _post(self, zone: str, fields: dict[str, Any] | None) -> dict[str, Any] | httpx.Response:
        if fields is None or not all(fields.get(key) for key in ("type", "name", "content")):
            return failure(400, 9000, "DNS name, type and content are required")
        refused = self._refuse(zone, fields)
        if refused is not None:
            return refused
        record = self._shape(zone, {key: v for key, v in fields.items() if key != "id"})
        self._store(zone, record)
        return record

    def _patched(
        self, zone: str, record_id: str, fields: dict[str, Any] | None
    ) -> dict[str, Any] | httpx.Response:
        record = self.records[zone].get(record_id)
        if record is None:
            return _not_found()
        if fields is None:
            return failure(400, 9207, "Request body is invalid.")
        return self._update(zone, record, {**record, **fields})

    def _replaced(
        self, zone: str, record_id: str, fields: dict[str, Any] | None
    ) -> dict[str, Any] | httpx.Response:
        record = self.records[zone].get(record_id)
        if record is None:
            return _not_found()
        if fields is None or not all(fields.get(key) for key in ("type", "name", "content")):
            return failure(400, 9000, "DNS name, type and content are required")
        return self._update(zone, record, {**record, "ttl": 1, "proxied": False, **fields})

    def _deleted(self, zone: str, record_id: str) -> dict[str, Any] | httpx.Response:
        record = self.records[zone].pop(record_id, None)
        if record is None:
            return _not_found()
        self._by_name[zone].get(record["name"], {}).pop(record_id, None)
        self._version += 1
        return record

    def _store(self, zone: str, record: dict[str, Any]) -> None:
        old = self.records[zone].get(record["id"])
        if old is not None and old["name"] != record["name"]:
            self._by_name[zone].get(old["name"], {}).pop(record["id"], None)
        self.records[zone][record["id"]] = record
        self._by_name[zone].setdefault(record["name"], {})[record["id"]] = None
        self._version += 1

    def _restore(self, zone: str, records: dict[str, dict[str, Any]]) -> None:
        """Put the zone back as it was before a refused batch (and rebuild its name index)."""
        self.records[zone] = records
        self._by_name[zone] = {}
        for record in records.values():
            self._by_name[zone].setdefault(record["name"], {})[record["id"]] = None
        self._version += 1

    # --- the zone's rules -----------------------------------------------------------------
    def _update(
        self, zone: str, record: dict[str, Any], wanted: dict[str, Any]
    ) -> dict[str, Any] | httpx.Response:
        refused = self._refuse(zone, wanted, ignore=record["id"])
        if refused is not None:
            return refused
        updated = self._shape(zone, wanted)
        updated.update(id=record["id"], created_on=record["created_on"], modified_on=_now())
        self._store(zone, updated)
        return updated

    def _refuse(self, zone: str, fields: dict[str, Any], ignore: str = "") -> httpx.Response | None:
        """Cloudflare's validation of a record about to be written, or None when it passes."""
        record_type, content = fields["type"], str(fields["content"])
        name = self._fqdn(zone, str(fields["name"]))
        if record_type in {"A", "AAAA"}:
            version = 4 if record_type == "A" else 6
            try:
                valid = ipaddress.ip_address(content).version == version
            except ValueError:
                valid = False
            if not valid:
                return failure(
                    400,
                    9005,
                    f"Content for {record_type} record is invalid. Must "
                    f"be a valid IPv{version} address.",
                )
        ttl = fields.get("ttl", 1)
        if not isinstance(ttl, int) or not (ttl == 1 or 60 <= ttl <= 86400):
            return failure(
                400, 9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic."
            )
        ids = self._by_name[zone].get(name, {})
        others = [self.records[zone][i] for i in ids if i != ignore]
        for other in others:
            if other["type"] == record_type and _same_content(
                record_type, other["content"], content
            ):
                return failure(400, 81058, "An identical record already exists.")
            if (
                "CNAME" in {other["type"], record_type}
                and other["type"] in CNAME_EXCLUSIVE
                and (record_type in CNAME_EXCLUSIVE)
            ):
                return failure(
                    400, 81053, "An A, AAAA, or CNAME record with that host already exists."
                )
        return None

    def _fqdn(self, zone: str, name: str) -> str:
        zone_name = self.zones[zone]
        name = name.rstrip(".").lower()
        if name in {"@", ""}:
            return zone_name
        if name == zone_name or name.endswith("." + zone_name):
            return name
        return f"{name}.{zone_name}"

    def _shape(self, zone: str, fields: dict[str, Any]) -> dict[str, Any]:
        record_type = fields["type"]
        content = str(fields["content"])
        if record_type == "AAAA":
            content = str(ipaddress.ip_address(content))  # stored compressed, as Cloudflare does
        proxiable = record_type in PROXIABLE_TYPES
        proxied = bool(fields.get("proxied", False)) and proxiable
        record: dict[str, Any] = {
            "id": fields.get("id") or secrets.token_hex(16),
            "zone_id": zone,
            "zone_name": self.zones[zone],
            "name": self._fqdn(zone, str(fields["name"])),
            "type": record_type,
            "content": content,
            "proxiable": proxiable,
            "proxied": proxied,
            "ttl": 1 if proxied else int(fields.get("ttl", 1)),  # proxied records are automatic
            "locked": False,
            "meta": {"auto_added": False, "source": "primary"},
            "tags": list(fields.get("tags") or []),
            "created_on": fields.get("created_on") or _now(),
            "modified_on": fields.get("modified_on") or _now(),
        }
        if fields.get("comment"):  # Cloudflare sends null; the published schema says string
            record["comment"] = str(fields["comment"])
        return record


def _not_found() -> httpx.Response:
    return failure(404, 81044, "Record does not exist.")


def _body(request: httpx.Request) -> dict[str, Any] | None:
    try:
        body = json.loads(request.content or b"null")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    """A batch item's record fields (its `id` says which record, it is not a change)."""
    return {key: value for key, value in item.items() if key != "id"}


def _listed(record: dict[str, Any], params: httpx.QueryParams) -> bool:
    name = params.get("name")
    if name is not None and record["name"] != name.rstrip(".").lower():
        return False
    if params.get("type") not in {None, record["type"]}:
        return False
    content = params.get("content")
    return content is None or _same_content(record["type"], record["content"], content)


def _same_content(record_type: str, left: str, right: str) -> bool:
    if record_type in {"A", "AAAA"}:
        try:
            return ipaddress.ip_address(left) == ipaddress.ip_address(right)
        except ValueError:
            pass
    return left == right

"""Cloudflare DNS (API v4): one zone's records, listed, created, patched and deleted.

Upsert is list-then-write so a retry (after a timeout or a lost answer) never leaves two records
for one name and type; Cloudflare's "already exists" answers to a create are adopted the same way.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, NotRequired, TypedDict

import httpx

from dns.backends.base import DnsBackend, DnsError, Record, RecordSpec
from provisioning.providers.base import NoBudget, RateBudget
from wopr.lib.http import http_client

logger = logging.getLogger(__name__)

PER_PAGE = 100
# A name and type holding more than PER_PAGE * MAX_PAGES records is a runaway, not a zone.
MAX_PAGES = 20
# Listing a whole zone (reconciliation) may take longer: 200 pages of 100 records.
ZONE_MAX_PAGES = 200
# "The record already exists." (older wording) and "An identical record already exists."
EXISTS_CODES = frozenset({"81057", "81058"})
RECORD_NOT_FOUND = "81044"
# Cloudflare blocks a token for five minutes once its 1200 requests per 5 minutes are spent;
# assume that window when a 429 arrives without Retry-After.
DEFAULT_RETRY_AFTER = 300.0


class CloudflareMessage(TypedDict):
    code: int
    message: str


class CloudflareRecord(TypedDict):
    """A DNS record as the API returns it (the fields this adapter reads)."""

    id: str
    type: str
    name: str
    content: str
    ttl: int
    proxied: bool
    proxiable: NotRequired[bool]
    zone_id: NotRequired[str]
    zone_name: NotRequired[str]
    created_on: NotRequired[str]
    modified_on: NotRequired[str]


class ResultInfo(TypedDict, total=False):
    page: int
    per_page: int
    count: int
    total_count: int
    total_pages: int


class RecordList(TypedDict):
    success: bool
    errors: list[CloudflareMessage]
    messages: list[CloudflareMessage]
    result: list[CloudflareRecord]
    result_info: NotRequired[ResultInfo]


class RecordResult(TypedDict):
    success: bool
    errors: list[CloudflareMessage]
    messages: list[CloudflareMessage]
    result: CloudflareRecord


class RecordBody(TypedDict):
    """What POST and PATCH send. PATCH carries type and name too: the API's own published
    schema for PATCH requires them, and sending the values the record already has is harmless."""

    type: str
    name: str
    content: str
    ttl: int
    proxied: bool


class CloudflareDns(DnsBackend):
    """One Cloudflare zone, through an API token with DNS edit permission on it."""

    kind = "cloudflare"

    def __init__(
        self, *, base_url: str, token: str, zone_id: str, budget: RateBudget | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.zone_id = zone_id
        self.budget: RateBudget = budget or NoBudget()
        self._local = threading.local()  # the open client of the current call, per thread

    def __repr__(self) -> str:  # never the token
        return f"CloudflareDns(base_url={self.base_url!r}, zone_id={self.zone_id!r})"

    # --- the interface ----------------------------------------------------------------------
    def find(self, name: str, record_type: str) -> list[Record]:
        """Records of `record_type` at exactly `name`, following every page of the listing."""
        records: list[Record] = []
        with self._session():
            for page in range(1, MAX_PAGES + 1):
                params = {"name": name, "type": record_type, "per_page": PER_PAGE, "page": page}
                body: RecordList = self._request("GET", self._records_path(), params=params)
                result = body.get("result") or []
                # Filter again here: a server that ignored the filters must not make us patch
                # or delete somebody else's record.
                records += [
                    _record(item) for item in result if _same_rrset(item, name, record_type)
                ]
                if _last_page(body, page, len(result)):
                    return records
        raise DnsError(
            f"Cloudflare listed more than {MAX_PAGES} pages of {record_type} {name}",
            transient=False,
            code="too_many_pages",
        )

    def list_records(self, suffix: str) -> list[Record]:
        """Every A and AAAA record of the zone whose name ends with `suffix` (reconciliation).

        The 2024 API has no suffix filter, so the zone is listed type by type, page by page."""
        records: list[Record] = []
        with self._session():
            for record_type in ("A", "AAAA"):
                for page in range(1, ZONE_MAX_PAGES + 1):
                    params = {"type": record_type, "per_page": PER_PAGE, "page": page}
                    body: RecordList = self._request("GET", self._records_path(), params=params)
                    result = body.get("result") or []
                    records += [
                        _record(item)
                        for item in result
                        if item.get("type") == record_type and item.get("name", "").endswith(suffix)
                    ]
                    if _last_page(body, page, len(result)):
                        break
                else:
                    raise DnsError(
                        f"Cloudflare listed more than {ZONE_MAX_PAGES} pages of {record_type}",
                        transient=False,
                        code="too_many_pages",
                    )
        return records

    def upsert(self, spec: RecordSpec) -> Record:
        """Make exactly one record of the spec's name and type, holding the spec's values.

        Writes nothing when a matching record is there already; patches an outdated one;
        deletes duplicates; creates only when the listing is empty.
        """
        with self._session():
            existing = self.find(spec.name, spec.record_type)
            if existing:
                return self._settle(existing, spec)
            try:
                body: RecordResult = self._request("POST", self._records_path(), json=_body(spec))
            except DnsError as error:
                # A concurrent worker, or our own earlier create whose answer was lost, made it.
                if error.code not in EXISTS_CODES:
                    raise
                existing = self.find(spec.name, spec.record_type)
                if not existing:  # not listed yet: the listing may lag the create
                    raise DnsError(
                        f"{error} but no {spec.record_type} {spec.name} is listed",
                        transient=True,
                        code=error.code,
                    ) from error
                return self._settle(existing, spec)
            return _record(body["result"])

    def delete(self, record_id: str) -> None:
        """Delete a record; one Cloudflare does not know (404, code 81044) is already gone."""
        try:
            self._request("DELETE", f"{self._records_path()}/{record_id}")
        except DnsError as error:
            if error.code not in {RECORD_NOT_FOUND, "http_404"}:
                raise

    # --- helpers ----------------------------------------------------------------------------
    def _settle(self, existing: list[Record], spec: RecordSpec) -> Record:
        """Keep one of `existing` (a matching one if there is), bring it to `spec`, delete the
        rest."""
        keep = next((record for record in existing if _matches(record, spec)), existing[0])
        if not _matches(keep, spec):
            body: RecordResult = self._request(
                "PATCH", f"{self._records_path()}/{keep.id}", json=_body(spec)
            )
            keep = _record(body["result"])
        for duplicate in existing:
            if duplicate.id != keep.id:
                self.delete(duplicate.id)
        return keep

    def _records_path(self) -> str:
        return f"/zones/{self.zone_id}/dns_records"

    @contextmanager
    def _session(self) -> Iterator[httpx.Client]:
        """One client (one connection pool) for every request of a public call."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is not None:
            yield client
            return
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        with http_client(base_url=self.base_url, headers=headers) as client:
            self._local.client = client
            try:
                yield client
            finally:
                self._local.client = None

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: RecordBody | None = None,
    ) -> Any:
        """Send one request within the budget; the decoded success body, or DnsError."""
        self.budget.check()
        with self._session() as client:
            try:
                response = client.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:  # timeouts, refused, reset, lost answers
                raise DnsError(
                    f"Cloudflare {method} {path}: {type(exc).__name__}",
                    transient=True,
                    code="network",
                ) from exc
        logger.debug(
            "cloudflare %s %s -> %s cf-ray=%s",
            method,
            path,
            response.status_code,
            response.headers.get("cf-ray", "-"),
        )
        self._record_budget(response)
        if not response.is_success:
            raise cloudflare_error(response)
        body = _json(response)
        if body is None or body.get("success") is False:
            raise cloudflare_error(response)
        return body

    def _record_budget(self, response: httpx.Response) -> None:
        if response.status_code == 429:
            self.budget.record(remaining=None, retry_after=_retry_after(response))
            return
        remaining, reset_at = _ratelimit_header(response)
        self.budget.record(remaining=remaining, reset_at=reset_at)


def cloudflare_error(response: httpx.Response) -> DnsError:
    """The DnsError an unsuccessful Cloudflare answer means (pure: reads only `response`).

    429 is transient with the Retry-After wait; 5xx and an unreadable 2xx (an edge proxy's page)
    are transient; every other 4xx, including 401/403 (10000 "Authentication error", 9109
    "Invalid access token"), and a readable `"success": false` are permanent. `code` is
    Cloudflare's first error code, else `http_<status>`.
    """
    status = response.status_code
    decoded = _json(response)
    body = decoded or {}
    errors = body.get("errors") if isinstance(body.get("errors"), list) else []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    code = str(first["code"]) if first.get("code") is not None else f"http_{status}"
    detail = str(first.get("message") or response.reason_phrase or "no message")[:300]
    where = _where(response)
    message = f"Cloudflare answered {status}{where}: {detail} ({code})"
    if status == 429:
        return DnsError(message, transient=True, code=code, retry_after=_retry_after(response))
    if status >= 500 or (response.is_success and decoded is None):
        return DnsError(message, transient=True, code=code)
    return DnsError(message, transient=False, code=code)


def _where(response: httpx.Response) -> str:
    try:
        request = response.request
    except RuntimeError:  # a response built without a request (tests)
        return ""
    return f" to {request.method} {request.url.path}"


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:  # an HTML error page from the edge, an empty body
        return None
    return body if isinstance(body, dict) else None


def _retry_after(response: httpx.Response) -> float:
    """Seconds to wait: Retry-After as seconds or an HTTP date, else Cloudflare's window."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return DEFAULT_RETRY_AFTER
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


_RATELIMIT_PART = re.compile(r"\b([rt])=(\d+)")


def _ratelimit_header(response: httpx.Response) -> tuple[int | None, datetime | None]:
    """Remaining requests and reset time from the `Ratelimit: "default";r=50;t=30` header,
    which newer API answers carry; (None, None) when absent, as it mostly is."""
    parts = dict(_RATELIMIT_PART.findall(response.headers.get("ratelimit", "")))
    if "r" not in parts:
        return None, None
    reset_at = datetime.now(UTC) + timedelta(seconds=int(parts["t"])) if "t" in parts else None
    return int(parts["r"]), reset_at


def _last_page(body: RecordList, page: int, count: int) -> bool:
    info = body.get("result_info") or {}
    total_pages = info.get("total_pages")
    if total_pages is not None:
        return page >= int(total_pages)
    # Older answers (and the published 2024 schema) carry no total_pages, and total_count may
    # count the whole zone: a short page is the last one.
    return count < PER_PAGE


def _body(spec: RecordSpec) -> RecordBody:
    return {
        "type": spec.record_type,
        "name": spec.name,
        "content": spec.content,
        "ttl": spec.ttl,
        "proxied": spec.proxied,
    }


def _record(item: CloudflareRecord) -> Record:
    return Record(
        id=item["id"],
        record_type=item["type"],
        name=item["name"],
        content=item["content"],
        ttl=int(item.get("ttl", 1)),
        proxied=bool(item.get("proxied", False)),
    )


def _normal_name(name: str) -> str:
    return name.rstrip(".").lower()


def _same_rrset(item: CloudflareRecord, name: str, record_type: str) -> bool:
    return item.get("type") == record_type and _normal_name(item.get("name", "")) == (
        _normal_name(name)
    )


def _same_content(record_type: str, left: str, right: str) -> bool:
    """Addresses compare as addresses: Cloudflare stores IPv6 in its compressed form."""
    if record_type in {"A", "AAAA"}:
        try:
            return ipaddress.ip_address(left) == ipaddress.ip_address(right)
        except ValueError:
            pass
    return left == right


def _matches(record: Record, spec: RecordSpec) -> bool:
    """Whether `record` already holds `spec`. Cloudflare forces ttl 1 ("automatic") on proxied
    records, so the ttl of a proxied record is not compared, or every upsert would patch."""
    if record.proxied != spec.proxied:
        return False
    if not _same_content(spec.record_type, record.content, spec.content):
        return False
    return spec.proxied or record.ttl == spec.ttl

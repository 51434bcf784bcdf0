"""Cloudflare DNS (API v4): one zone's records, listed, created, patched and deleted.

Only Cloudflare's own parts live here: its error table (`cloudflare_error`), its parsers and its
endpoints. Sending, budget, logging and paging are `integrations.http.VendorClient`'s.

Writes are list-then-write so a retry (after a timeout or a lost answer) never leaves two
records for one name and type; Cloudflare's "already exists" answers are adopted the same way.
A Beacon's records go through `upsert_all` / `delete_names`: each name listed once (all types),
then every change in one call to the batch endpoint (`POST /zones/{id}/dns_records/batch`,
executed by Cloudflare in one transaction, in the order deletes, patches, puts, posts).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, NotRequired, TypedDict, TypeVar

import httpx

from integrations.budget import BudgetReading, RateBudget
from integrations.dns.base import DnsBackend, DnsError, Record, RecordSpec
from integrations.errors import ExternalError
from integrations.http import VendorClient, request_where

logger = logging.getLogger(__name__)

PER_PAGE = 100
# Reconciliation lists the whole zone: the API allows large pages, so 20,000 records are 4 calls.
ZONE_PER_PAGE = 5000
# Cloudflare's batch limit on the Free plan (Pro and above allow 3,500 changes per call).
BATCH_LIMIT = 200
# "The record already exists." (older wording) and "An identical record already exists."
EXISTS_CODES = frozenset({"81057", "81058"})
RECORD_NOT_FOUND = "81044"
# A batch refused for a record made or deleted meanwhile (see upsert_all, delete_names).
LAG_CODES = EXISTS_CODES | {RECORD_NOT_FOUND, "http_404"}
T = TypeVar("T")
# Cloudflare blocks a token for five minutes once its 1200 requests per 5 minutes are spent;
# assume that window when a 429 arrives without Retry-After.
DEFAULT_RETRY_AFTER = 300.0
ADDRESS_TYPES = ("A", "AAAA")


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


class RecordBody(TypedDict):
    """What POST and PATCH send. PATCH carries type and name too: the API's own published
    schema for PATCH requires them, and sending the values the record already has is harmless."""

    type: str
    name: str
    content: str
    ttl: int
    proxied: bool


class BatchPatch(RecordBody):
    id: str


class BatchDelete(TypedDict):
    id: str


class BatchBody(TypedDict, total=False):
    """The batch endpoint's request: each list optional, executed in this order."""

    deletes: list[BatchDelete]
    patches: list[BatchPatch]
    posts: list[RecordBody]


class BatchResult(TypedDict, total=False):
    deletes: list[CloudflareRecord]
    patches: list[CloudflareRecord]
    posts: list[CloudflareRecord]


@dataclass
class Plan:
    """The writes that bring the listed records to the specs: one batch call, or none."""

    kept: dict[int, Record] = field(default_factory=dict)  # spec index -> record already right
    patches: list[tuple[int, str]] = field(default_factory=list)  # spec index, record id
    posts: list[int] = field(default_factory=list)  # spec index
    deletes: list[str] = field(default_factory=list)  # duplicate record ids

    def empty(self) -> bool:
        return not (self.patches or self.posts or self.deletes)


class CloudflareDns(VendorClient, DnsBackend):
    """One Cloudflare zone, through an API token with DNS edit permission on it."""

    kind = "cloudflare"
    vendor = "Cloudflare"
    error_class = DnsError
    correlation_header = "cf-ray"

    def __init__(
        self, *, base_url: str, token: str, zone_id: str, budget: RateBudget | None = None
    ) -> None:
        super().__init__(base_url=base_url, token=token, budget=budget)
        self.zone_id = zone_id

    def __repr__(self) -> str:  # never the token
        return f"CloudflareDns(base_url={self.base_url!r}, zone_id={self.zone_id!r})"

    # --- single records ---------------------------------------------------------------------
    def find(self, name: str, record_type: str) -> list[Record]:
        """Records of `record_type` at exactly `name`, following every page of the listing."""
        # Filter again here: a server that ignored the filters must not make us patch or
        # delete somebody else's record.
        listed = self._listing({"name": name, "type": record_type}, PER_PAGE)
        return [_record(item) for item in listed if _same_rrset(item, name, record_type)]

    def upsert(self, spec: RecordSpec) -> Record:
        """Make exactly one record of the spec's name and type, holding the spec's values.

        Writes nothing when a matching record is there already; patches an outdated one;
        deletes duplicates; creates only when the listing is empty.
        """
        existing = self.find(spec.name, spec.record_type)
        if existing:
            return self._settle(existing, spec)
        try:
            body = self.request("POST", self._records_path(), json=_body(spec))
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
            self.request("DELETE", f"{self._records_path()}/{record_id}")
        except DnsError as error:
            if error.code not in {RECORD_NOT_FOUND, "http_404"}:
                raise

    # --- many records: one listing per name, one batch ----------------------------------------
    def upsert_all(self, specs: Sequence[RecordSpec]) -> list[Record]:
        """Make exactly one record per spec's name and type hold it, in `len(names)` listings
        and at most one batch call; the records in the specs' order.

        A batch refused because a record appeared meanwhile (another worker, our own lost
        answer) is planned again from a fresh listing once."""
        return _twice(lambda: self._upsert_all_once(specs), EXISTS_CODES)

    def delete_names(self, names: Sequence[str], record_types: Sequence[str]) -> int:
        """Delete every record of `record_types` at `names`: one listing per name, one batch.
        A record deleted meanwhile (81044 fails the whole batch) makes it list and try again."""
        return _twice(
            lambda: self._delete_names_once(names, record_types), {RECORD_NOT_FOUND, "http_404"}
        )

    def list_records(self, suffix: str) -> list[Record]:
        """Every A and AAAA record of the zone whose name ends with `suffix` (reconciliation).

        The 2024 API has no suffix filter: the whole zone is listed, every page of it."""
        return [
            _record(item)
            for item in self._listing({}, ZONE_PER_PAGE)
            if item.get("type") in ADDRESS_TYPES and item.get("name", "").endswith(suffix)
        ]

    # --- helpers ----------------------------------------------------------------------------
    def _upsert_all_once(self, specs: Sequence[RecordSpec]) -> list[Record]:
        listed = self._by_name({spec.name for spec in specs})
        plan = _plan(specs, listed)
        if plan.empty():
            return [plan.kept[index] for index in range(len(specs))]
        body: BatchBody = {
            "deletes": [{"id": record_id} for record_id in plan.deletes],
            "patches": [{"id": rid, **_body(specs[index])} for index, rid in plan.patches],
            "posts": [_body(specs[index]) for index in plan.posts],
        }
        result = self._batch(body)
        made = dict(plan.kept)
        made.update(zip([i for i, _ in plan.patches], _records(result, "patches"), strict=True))
        made.update(zip(plan.posts, _records(result, "posts"), strict=True))
        return [made[index] for index in range(len(specs))]

    def _delete_names_once(self, names: Sequence[str], record_types: Sequence[str]) -> int:
        listed = self._by_name(set(names))
        doomed = [r.id for found in listed.values() for r in found if r.record_type in record_types]
        if doomed:
            self._batch({"deletes": [{"id": record_id} for record_id in doomed]})
        return len(doomed)

    def _by_name(self, names: Iterable[str]) -> dict[str, list[Record]]:
        """Every record at each name (all types), one listing per name."""
        return {
            _normal_name(name): [
                _record(item)
                for item in self._listing({"name": name}, PER_PAGE)
                if _normal_name(item.get("name", "")) == _normal_name(name)
            ]
            for name in sorted(names)
        }

    def _batch(self, body: BatchBody) -> BatchResult:
        """Send `body` to the batch endpoint, in chunks of BATCH_LIMIT changes (one call for a
        Beacon); the results of every chunk, concatenated per list."""
        result: dict[str, list[CloudflareRecord]] = {}
        for chunk in _chunks(body, BATCH_LIMIT):
            answer = self.request("POST", f"{self._records_path()}/batch", json=chunk)
            part = answer.get("result")
            if not isinstance(part, dict):
                raise self.invalid("the batch")
            for key in ("deletes", "patches", "posts"):
                result.setdefault(key, []).extend(part.get(key) or [])
        return result  # type: ignore[return-value]

    def _listing(self, params: dict[str, Any], per_page: int) -> Iterable[CloudflareRecord]:
        return self.pages(
            self._records_path(),
            items=_page_items,
            next_page=_next_page(per_page),
            params={**params, "per_page": per_page},
        )

    def _settle(self, existing: list[Record], spec: RecordSpec) -> Record:
        """Keep one of `existing` (a matching one if there is), bring it to `spec`, delete the
        rest."""
        keep = next((record for record in existing if _matches(record, spec)), existing[0])
        if not _matches(keep, spec):
            path = f"{self._records_path()}/{keep.id}"
            keep = _record(self.request("PATCH", path, json=_body(spec))["result"])
        for duplicate in existing:
            if duplicate.id != keep.id:
                self.delete(duplicate.id)
        return keep

    def _records_path(self) -> str:
        return f"/zones/{self.zone_id}/dns_records"

    # --- VendorClient hooks -------------------------------------------------------------------
    def classify(self, response: httpx.Response) -> DnsError:
        return cloudflare_error(response)

    def budget_reading(
        self, response: httpx.Response, error: ExternalError | None
    ) -> BudgetReading | None:
        if response.status_code == 429:
            return BudgetReading(retry_after=_retry_after(response))
        remaining, reset_at = _ratelimit_header(response)
        return BudgetReading(remaining=remaining, reset_at=reset_at)

    def decode(self, response: httpx.Response, method: str, path: str) -> Any:
        """The envelope; an unreadable body or `"success": false` (even with a 2xx) is an
        error, as the error table says."""
        body = _json(response)
        if body is None or body.get("success") is False:
            raise cloudflare_error(response)
        return body

    def exchange(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[httpx.Response, ExternalError | None]:
        try:
            return super().exchange(method, path, **kwargs)
        except DnsError as error:
            # Cloudflare errors have said "network" for every lost or late answer since the
            # first release; jobs' error histories and alerts match on it.
            if error.code != "timeout":
                raise
            raise DnsError(str(error), transient=True, code="network") from error.__cause__

    def _log(
        self, method: str, path: str, response: httpx.Response, error: ExternalError | None
    ) -> None:
        # "cf-ray=<id>" is the form Cloudflare support asks for with a failed request.
        logger.log(
            logging.DEBUG if error is None else logging.INFO,
            "cloudflare %s %s -> %s cf-ray=%s",
            method,
            path,
            response.status_code,
            response.headers.get("cf-ray", "-"),
        )


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
    message = f"Cloudflare answered {status}{request_where(response)}: {detail} ({code})"
    if status == 429:
        return DnsError(message, transient=True, code=code, retry_after=_retry_after(response))
    if status >= 500 or (response.is_success and decoded is None):
        return DnsError(message, transient=True, code=code)
    return DnsError(message, transient=False, code=code)


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


def _page_items(body: dict[str, Any]) -> list[CloudflareRecord]:
    result = body.get("result") or []
    return [item for item in result if isinstance(item, dict)] if isinstance(result, list) else []


def _next_page(per_page: int) -> Callable[[dict[str, Any], int], int | None]:
    def following(body: dict[str, Any], page: int) -> int | None:
        info = body.get("result_info") or {}
        total_pages = info.get("total_pages")
        if total_pages is not None:
            return page + 1 if page < int(total_pages) else None
        # Older answers (and the published 2024 schema) carry no total_pages, and total_count
        # may count the whole zone: a short page is the last one.
        return page + 1 if len(body.get("result") or []) >= per_page else None

    return following


def _plan(specs: Sequence[RecordSpec], listed: dict[str, list[Record]]) -> Plan:
    """Per spec: keep a matching record, else patch one of that type, else post; every other
    record of the spec's name and type is a duplicate to delete."""
    plan = Plan()
    for index, spec in enumerate(specs):
        same = [r for r in listed[_normal_name(spec.name)] if r.record_type == spec.record_type]
        keep = next((record for record in same if _matches(record, spec)), None)
        if keep is not None:
            plan.kept[index] = keep
        elif same:
            keep = same[0]
            plan.patches.append((index, keep.id))
        else:
            plan.posts.append(index)
        plan.deletes += [record.id for record in same if keep is None or record.id != keep.id]
    return plan


def _chunks(body: BatchBody, limit: int) -> list[BatchBody]:
    """`body` split so no call carries more than `limit` changes, the lists in the order
    Cloudflare runs them (deletes, patches, posts)."""
    changes = [(key, item) for key in ("deletes", "patches", "posts") for item in body.get(key, [])]
    chunks: list[BatchBody] = []
    for start in range(0, len(changes), limit):
        chunk: dict[str, list[Any]] = {}
        for key, item in changes[start : start + limit]:
            chunk.setdefault(key, []).append(item)
        chunks.append(chunk)  # type: ignore[arg-type]
    return chunks


def _records(result: BatchResult, key: str) -> list[Record]:
    return [_record(item) for item in result.get(key) or []]  # type: ignore[misc]


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
    if record_type in ADDRESS_TYPES:
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


def _twice(attempt: Callable[[], T], again_on: Collection[str]) -> T:
    """Run a listing-then-batch `attempt`; planned again once from a fresh listing when the
    batch is refused with one of `again_on` (the zone changed meanwhile). A second refusal of
    that kind is the listing lagging the change: transient."""
    try:
        return attempt()
    except DnsError as error:
        if error.code not in again_on:
            raise
    try:
        return attempt()
    except DnsError as error:
        if error.code not in LAG_CODES:
            raise
        raise _lagging(error) from error


def _lagging(error: DnsError) -> DnsError:
    """A batch refused a second time for a record that appeared or vanished meanwhile: the
    listing lags the change (our own lost answer, usually). Transient: the job retries later,
    instead of tearing a paid server down for it."""
    return DnsError(f"{error} (the listing lags the change)", transient=True, code=error.code)

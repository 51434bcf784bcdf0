"""The DigitalOcean adapter: droplets carrying our labels as tags, actions to poll.

It runs on the one request pipeline (integrations.http.VendorClient).

DigitalOcean has tags where Hetzner has labels: each label `k=v` travels as the tag `k:v`
(tags allow letters, numbers, colons, dashes and underscores). Finding servers by labels asks
for the droplets carrying one of those tags and checks the others here. Droplet names need not
be unique, so a create whose answer was lost is found again by its `wopr-job` tag, never by
a uniqueness error. There is no delete protection: `protect()` stays the base no-op.

Snapshots carry no tags there: our labels are read back from the snapshot's name, which the
caller makes as `wopr-<beacon uuid>-<kind>-<yyyymmdd>` (see `snapshot_labels`).

Every request spends from a budget shared by all workers (`RateBudget`), checked before
sending and updated from the `ratelimit-*` headers of every answer. The token is sent in the
Authorization header only: it is never logged nor put in an error; DigitalOcean's request id is.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, TypedDict
from urllib.parse import parse_qs, urlsplit

import httpx

from integrations.budget import BudgetReading, RateBudget
from integrations.clouds.base import (
    ActionStatus,
    CloudProvider,
    Created,
    Location,
    ProviderError,
    ResizeStarted,
    Server,
    ServerSpec,
    ServerType,
    Snapshot,
    SnapshotStarted,
    SnapshotStatus,
    parse_timestamp,
)
from integrations.http import VendorClient, int_header

logger = logging.getLogger(__name__)

DROPLETS_PER_PAGE = 50
IMAGES_PER_PAGE = 200
# What a droplet snapshot costs when settings say nothing: DigitalOcean's list price, USD per GB
# and month (https://docs.digitalocean.com/products/snapshots/details/pricing/).
DEFAULT_SNAPSHOT_PRICE_PER_GB = Decimal("0.06")
SNAPSHOT_NAME = re.compile(
    r"^wopr-(?P<beacon>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-"
)
IMAGE_STATUS: dict[str, SnapshotStatus] = {
    "NEW": "creating",
    "pending": "creating",
    "available": "available",
}
CATALOGUE_PER_PAGE = 200  # the most DigitalOcean allows: regions and sizes fit on one page
# Our image names are the distribution's; DigitalOcean's slugs say the architecture too.
IMAGE_SLUGS = {"debian-12": "debian-12-x64"}
ID = re.compile(r"[1-9][0-9]{0,18}")
TAG = re.compile(r"^[A-Za-z0-9:_-]{1,255}$")
DROPLET_STATUS = {"new": "initializing", "active": "running", "off": "off", "archive": "off"}
ACTION_STATUS: dict[str, ActionStatus] = {
    "in-progress": "running",
    "completed": "success",
    "errored": "error",
}
# 422 answers meaning "not here, not now": the job should try the next location or provider.
CAPACITY = re.compile(
    r"\b(region|size)\b.*\b(not available|unavailable)\b"
    r"|not available in (this|the selected|that) region"
    r"|out of capacity|insufficient capacity|limited availability",
    re.IGNORECASE,
)
# 422 answers meaning "busy": another event runs on the droplet; trying later succeeds.
BUSY = re.compile(r"pending event|currently locked", re.IGNORECASE)
DEFAULT_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "too_many_requests"}


# --- DigitalOcean's JSON shapes (the parts the adapter reads) -----------------------------
class NetworkJson(TypedDict):
    ip_address: str
    type: str


class NetworksJson(TypedDict, total=False):
    v4: list[NetworkJson]
    v6: list[NetworkJson]


class RegionJson(TypedDict):
    slug: str
    name: str
    available: bool
    sizes: list[str]


class SizeJson(TypedDict):
    slug: str
    vcpus: int
    memory: int  # MB
    disk: int  # GB
    price_monthly: float
    regions: list[str]
    available: bool


class DropletJson(TypedDict):
    id: int
    name: str
    status: str  # new, active, off, archive
    region: RegionJson
    size_slug: str
    tags: list[str]
    networks: NetworksJson
    created_at: str


class ActionJson(TypedDict):
    id: int
    status: str  # in-progress, completed, errored
    type: str


class ImageJson(TypedDict):
    id: int
    name: str
    type: str  # "snapshot", "backup", "custom", "base", ...
    status: str  # "NEW", "available", "pending", "deleted", "retired"
    size_gigabytes: float | None
    created_at: str


class ActionLinkJson(TypedDict):
    id: int
    rel: str
    href: str


class LinksJson(TypedDict, total=False):
    pages: dict[str, str]
    actions: list[ActionLinkJson]


class ErrorJson(TypedDict, total=False):
    id: str
    message: str
    request_id: str


# --- labels and tags ------------------------------------------------------------------------
def labels_to_tags(labels: Mapping[str, str]) -> list[str]:
    """`{"wopr-job": "7"}` → `["wopr-job:7"]`; a label no tag can carry is refused here,
    before anything is sent."""
    tags = [f"{key}:{value}" for key, value in labels.items()]
    for tag in tags:
        if not TAG.match(tag):
            raise ProviderError(
                f"label {tag!r} cannot be a DigitalOcean tag (letters, digits, : - _ only)",
                transient=False,
                code="invalid_label",
            )
    return tags


def tags_to_labels(tags: Sequence[str]) -> dict[str, str]:
    """The labels among a droplet's tags (tags without a colon are someone else's)."""
    labels = {}
    for tag in tags:
        key, colon, value = tag.partition(":")
        if colon:
            labels[key] = value
    return labels


def snapshot_labels(name: str) -> dict[str, str]:
    """Our labels read back from a snapshot name: `wopr-<uuid>-...` gives wopr-snapshot,
    wopr-beacon (the uuid) and managed-by; a name that is not ours gives none."""
    if not name.startswith("wopr-"):
        return {}
    labels = {"wopr-snapshot": name, "managed-by": "wopr"}
    match = SNAPSHOT_NAME.match(name)
    if match:
        labels["wopr-beacon"] = match["beacon"]
    return labels


# --- errors ------------------------------------------------------------------------------
def digitalocean_error(response: httpx.Response) -> ProviderError:
    """Classify a DigitalOcean error answer: transient, capacity, or permanent.

    DigitalOcean's error body is `{"id", "message", "request_id"?}`; its `id` becomes the code.
    """
    status = response.status_code
    body = _error_body(response)
    code = body.get("id") or DEFAULT_CODES.get(status, f"http_{status}")
    message = (body.get("message") or response.reason_phrase or "no message")[:300]
    text = f"DigitalOcean {status} {code}: {message}"
    request_id = request_id_of(response)
    if request_id:
        text += f" (request {request_id})"
    if status == 429:
        return ProviderError(text, transient=True, code=code, retry_after=retry_after_of(response))
    if status >= 500 or status == 408:
        return ProviderError(text, transient=True, code=code)
    if status == 422 and CAPACITY.search(message):
        return ProviderError(text, transient=False, capacity=True, code=code)
    if status == 422 and BUSY.search(message):
        return ProviderError(text, transient=True, code=code)
    return ProviderError(text, transient=False, code=code)


def retry_after_of(response: httpx.Response) -> float | None:
    """Seconds to wait: Retry-After (burst limit), else until ratelimit-reset (hourly)."""
    header = response.headers.get("retry-after")
    if header:
        try:
            return max(float(header), 0.0)
        except ValueError:
            try:
                return max((parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds(), 0)
            except (TypeError, ValueError):
                pass
    reset = int_header(response, "ratelimit-reset")
    if reset is None:
        return None
    return max(reset - time.time(), 1.0)


def request_id_of(response: httpx.Response) -> str:
    """DigitalOcean's id of the request (header, or the error body), for support tickets."""
    return response.headers.get("x-request-id") or _error_body(response).get("request_id") or ""


def _error_body(response: httpx.Response) -> ErrorJson:
    try:
        body = response.json()
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    return ErrorJson(
        **{key: str(body[key]) for key in ("id", "message", "request_id") if body.get(key)}
    )


def digitalocean_budget(response: httpx.Response) -> BudgetReading | None:
    """What the ratelimit-* headers (and a 429's wait) say about the account's budget."""
    remaining = int_header(response, "ratelimit-remaining")
    limit = int_header(response, "ratelimit-limit")
    reset = int_header(response, "ratelimit-reset")
    retry_after = retry_after_of(response) if response.status_code == 429 else None
    if remaining is None and limit is None and reset is None and retry_after is None:
        return None  # an answer from something in front of DigitalOcean: it says nothing
    return BudgetReading(
        remaining=remaining,
        limit=limit,
        reset_at=datetime.fromtimestamp(reset, tz=UTC) if reset is not None else None,
        retry_after=retry_after,
    )


def _invalid(what: str) -> ProviderError:
    return ProviderError(
        f"DigitalOcean answered {what} in an unexpected shape", transient=True, code="bad_response"
    )


class DigitalOceanApi(VendorClient):
    """DigitalOcean's request pipeline: its error table, ratelimit-* headers and request id;
    every answer must be a JSON object."""

    vendor = "DigitalOcean"
    error_class = ProviderError
    correlation_header = "x-request-id"

    def classify(self, response: httpx.Response) -> ProviderError:
        return digitalocean_error(response)

    def budget_reading(self, response: httpx.Response, error: Any) -> BudgetReading | None:
        return digitalocean_budget(response)

    def decode(self, response: httpx.Response, method: str, path: str) -> Any:
        data = super().decode(response, method, path)
        if not isinstance(data, dict):
            raise _invalid(f"{method} {path}")
        return data


# --- the adapter -------------------------------------------------------------------------
class DigitalOceanProvider(CloudProvider):
    """DigitalOcean droplets through the v2 API (base URL without /v2; paths carry it)."""

    kind = "digitalocean"

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        budget: RateBudget | None = None,
        ssh_keys: Sequence[str] = (),
        snapshot_price_per_gb: Decimal | str | None = None,
    ) -> None:
        self.api = DigitalOceanApi(base_url=base_url, token=token, budget=budget)
        self.base_url = self.api.base_url
        self.budget: RateBudget = self.api.budget
        self.ssh_keys = list(ssh_keys)
        self.snapshot_price = _price(snapshot_price_per_gb)

    def __repr__(self) -> str:  # never the token
        return f"DigitalOceanProvider(base_url={self.base_url!r})"

    def create_server(self, spec: ServerSpec) -> Created:
        """POST /v2/droplets; the create action (links.actions[0]) is what to poll."""
        body = {
            "name": spec.name,
            "region": spec.location,
            "size": spec.size,
            "image": _image(spec.image),
            "ssh_keys": _ssh_keys([*self.ssh_keys, *spec.ssh_keys]),
            "user_data": spec.user_data,
            "ipv6": True,
            "tags": labels_to_tags(spec.labels),
        }
        data = self._call("POST", "/v2/droplets", body=body)
        # One droplet answers {"droplet": ...}; accept the many-droplets shape too.
        droplets = [data["droplet"]] if data.get("droplet") else data.get("droplets") or []
        actions = (data.get("links") or {}).get("actions") or []
        if not droplets:
            raise _invalid("the droplet create")
        server = _server(droplets[0])
        action_id = str(actions[0]["id"]) if actions else ""
        logger.info("digitalocean droplet %s created (action %s)", server.id, action_id or "-")
        return Created(server=server, action_id=action_id)

    def get_server(self, server_id: str) -> Server | None:
        """GET /v2/droplets/{id}; None when DigitalOcean does not know it."""
        if not _is_id(server_id):
            return None
        data = self._call("GET", f"/v2/droplets/{server_id}", missing_ok=True)
        if data is None:
            return None
        if not data.get("droplet"):
            raise _invalid("the droplet")
        return _server(data["droplet"])

    def find_servers(self, labels: dict[str, str]) -> list[Server]:
        """Droplets tagged with the first label's tag, then checked for every label here."""
        tags = labels_to_tags(labels)
        params = {"tag_name": tags[0]} if tags else {}
        servers = (
            _server(droplet)
            for droplet in self._pages("/v2/droplets", "droplets", params, DROPLETS_PER_PAGE)
        )
        return [
            server
            for server in servers
            if all(server.labels.get(key) == value for key, value in labels.items())
        ]

    def action_status(self, action_id: str) -> ActionStatus:
        """GET /v2/actions/{id}: in-progress → running, completed → success, errored → error."""
        if not _is_id(action_id):
            raise ProviderError(
                f"DigitalOcean action {action_id!r} does not exist",
                transient=False,
                code="not_found",
            )
        data = self._call("GET", f"/v2/actions/{action_id}")
        action: ActionJson = data.get("action") or {}
        status = action.get("status")
        if status not in ACTION_STATUS:
            raise _invalid(f"action {action_id}")
        return ACTION_STATUS[status]

    def power_off(self, server_id: str) -> str:
        """A hard power-off (the Beacon is stopped for good or for a while)."""
        return self._droplet_action(server_id, "power_off")

    def power_on(self, server_id: str) -> str:
        """Power the droplet on; returns the action id."""
        return self._droplet_action(server_id, "power_on")

    def server_resize(self, server_id: str, size: str, *, grow_disk: bool = True) -> ResizeStarted:
        """POST /v2/droplets/{id}/actions {"type": "resize", size, disk}; the droplet must be
        off, and a size with a smaller disk than the droplet's is refused (422)."""
        action_id = self._droplet_action(server_id, "resize", size=size, disk=grow_disk)
        return ResizeStarted(action_id=action_id, size=size, grow_disk=grow_disk)

    def resize_in_progress(self, server_id: str) -> str | None:
        """GET /v2/droplets/{id}/actions (every page): a resize still in progress."""
        path = f"/v2/droplets/{_droplet_id(server_id)}/actions"
        for action in self._pages(path, "actions", {}, CATALOGUE_PER_PAGE):
            if action.get("type") == "resize" and action.get("status") == "in-progress":
                return str(action["id"])
        return None

    def delete_server(self, server_id: str) -> None:
        """DELETE /v2/droplets/{id}; a droplet already gone is fine."""
        if not _is_id(server_id):
            return
        self._call("DELETE", f"/v2/droplets/{server_id}", missing_ok=True)
        logger.info("digitalocean droplet %s deleted", server_id)

    # --- snapshots -----------------------------------------------------------------------
    def create_snapshot(
        self, server_id: str, *, name: str, labels: dict[str, str]
    ) -> SnapshotStarted:
        """POST /v2/droplets/{id}/actions {"type": "snapshot", "name": name}. Snapshots carry
        no tags: `labels` must be what the name says (snapshot_labels). The snapshot's id is
        known only once the action completed: find it by name then."""
        data = self._call(
            "POST",
            f"/v2/droplets/{_droplet_id(server_id)}/actions",
            body={"type": "snapshot", "name": name},
        )
        action: ActionJson = data.get("action") or {}
        if "id" not in action:
            raise _invalid("the snapshot action")
        logger.info("digitalocean droplet %s snapshot started (action %s)", server_id, action["id"])
        return SnapshotStarted(snapshot_id=None, action_id=str(action["id"]))

    def find_snapshots(self, labels: dict[str, str]) -> list[Snapshot]:
        """GET /v2/images?private=true (every page): the droplet snapshots whose labels, read
        back from their names, include all of `labels`. /v2/images is used, not
        /v2/snapshots: it lists the same snapshots and is in the spec we check against."""
        images = self._pages("/v2/images", "images", {"private": "true"}, IMAGES_PER_PAGE)
        snapshots = (_snapshot(image) for image in images if image.get("type") == "snapshot")
        return [
            snapshot
            for snapshot in snapshots
            if all(snapshot.labels.get(key) == value for key, value in labels.items())
        ]

    def get_snapshot(self, snapshot_id: str) -> Snapshot | None:
        """GET /v2/images/{id}; None when DigitalOcean does not know it."""
        if not _is_id(snapshot_id):
            return None
        data = self._call("GET", f"/v2/images/{snapshot_id}", missing_ok=True)
        if data is None:
            return None
        if not data.get("image"):
            raise _invalid("the image")
        return _snapshot(data["image"])

    def delete_snapshot(self, snapshot_id: str) -> None:
        """DELETE /v2/images/{id}; a snapshot already gone is fine."""
        if not _is_id(snapshot_id):
            return
        self._call("DELETE", f"/v2/images/{snapshot_id}", missing_ok=True)
        logger.info("digitalocean snapshot %s deleted", snapshot_id)

    def snapshot_price_per_gb_month(self, location: str) -> Decimal:
        """DigitalOcean publishes no snapshot price in its API: the configured one
        (DIGITALOCEAN_SNAPSHOT_PRICE_PER_GB, USD, the same in every region)."""
        return self.snapshot_price

    def list_locations(self) -> list[Location]:
        """GET /v2/regions: a region's slug, and whether it takes new droplets."""
        return [
            Location(name=region["slug"], available=bool(region["available"]))
            for region in self._pages("/v2/regions", "regions", {}, CATALOGUE_PER_PAGE)
        ]

    def list_server_types(self) -> list[ServerType]:
        """GET /v2/sizes: one price for every region a size is sold in."""
        return [
            _server_type(size) for size in self._pages("/v2/sizes", "sizes", {}, CATALOGUE_PER_PAGE)
        ]

    # --- machinery -----------------------------------------------------------------------
    def _droplet_action(self, server_id: str, kind: str, **extra: Any) -> str:
        path = f"/v2/droplets/{_droplet_id(server_id)}/actions"
        data = self._call("POST", path, body={"type": kind, **extra})
        action: ActionJson = data.get("action") or {}
        if "id" not in action:
            raise _invalid(f"the {kind} action")
        return str(action["id"])

    def _pages(
        self, path: str, key: str, params: dict[str, str], per_page: int
    ) -> Iterator[dict[str, Any]]:
        """Every item of a listing, following links.pages.next to the end (only its page
        number: the next URL names DigitalOcean's host, which the token must not follow)."""
        return self.api.pages(
            path,
            items=lambda data: data.get(key) or [],
            next_page=_next_page,
            params={**params, "per_page": per_page},
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """One request through the pipeline: the JSON object ({} when empty), or None for a
        404 when `missing_ok`."""
        return self.api.request(method, path, params=params, json=body, missing_ok=missing_ok)


def _server(droplet: DropletJson) -> Server:
    try:
        networks = droplet.get("networks") or {}
        return Server(
            id=str(droplet["id"]),
            name=droplet["name"],
            status=DROPLET_STATUS.get(droplet["status"], droplet["status"]),
            location=droplet["region"]["slug"],
            size=droplet["size_slug"],
            labels=tags_to_labels(droplet.get("tags") or []),
            ipv4=_public_address(networks.get("v4") or []),
            ipv6=_public_address(networks.get("v6") or []),
            created_at=parse_timestamp(droplet.get("created_at")),
        )
    except (KeyError, TypeError) as exc:
        raise _invalid(f"a droplet (missing {exc})") from None


def _snapshot(image: ImageJson) -> Snapshot:
    try:
        size = image.get("size_gigabytes")
        return Snapshot(
            id=str(image["id"]),
            name=image["name"],
            labels=snapshot_labels(image["name"]),
            status=IMAGE_STATUS.get(image["status"], "error"),
            size_gb=float(size) if size is not None else None,
            server_id=None,  # an image does not say which droplet it was taken from
            created_at=parse_timestamp(image.get("created_at")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _invalid(f"an image (missing {exc})") from None


def _image(image: str) -> str | int:
    """The create body's image: a snapshot id (a restore) as the number the spec wants, our
    distribution names as DigitalOcean's slugs, anything else as given."""
    if _is_id(image):
        return int(image)
    return IMAGE_SLUGS.get(image, image)


def _price(value: Decimal | str | None) -> Decimal:
    if value is None or value == "":
        return DEFAULT_SNAPSHOT_PRICE_PER_GB
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"snapshot price {value!r} is not a number") from None


def _droplet_id(server_id: str) -> str:
    if not _is_id(server_id):
        raise ProviderError(
            f"DigitalOcean droplet {server_id!r} does not exist", transient=False, code="not_found"
        )
    return server_id


def _server_type(size: SizeJson) -> ServerType:
    try:
        price = Decimal(str(size["price_monthly"])).quantize(Decimal("0.01"))
        return ServerType(
            name=size["slug"],
            cores=int(size["vcpus"]),
            memory_gb=size["memory"] / 1024,
            disk_gb=int(size["disk"]),
            monthly_price=dict.fromkeys(size["regions"], price),
            deprecated=not size.get("available", True),
        )
    except (KeyError, TypeError, ArithmeticError) as exc:
        raise _invalid(f"a size (missing {exc})") from None


def _public_address(networks: list[NetworkJson]) -> str | None:
    for network in networks:
        if network.get("type") == "public" and network.get("ip_address"):
            return network["ip_address"]
    return None


def _is_id(value: str) -> bool:
    """DigitalOcean's ids are positive integers; anything else names nothing there."""
    return ID.fullmatch(value) is not None


def _next_page(data: dict[str, Any], page: int) -> int | None:
    links: LinksJson = data.get("links") or {}
    url = (links.get("pages") or {}).get("next")
    if not url:
        return None
    try:
        following = int(parse_qs(urlsplit(url).query)["page"][0])
    except (KeyError, ValueError):
        raise _invalid("a next-page link") from None
    if following <= page:  # never from DigitalOcean; a static mock's example does it
        logger.warning("digitalocean: next page %s after %s; stopping", following, page)
        return None
    return following


def _ssh_keys(keys: Sequence[str]) -> list[int | str]:
    """Key ids as numbers, fingerprints as text, each once."""
    unique = dict.fromkeys(str(key).strip() for key in keys if str(key).strip())
    return [int(key) if key.isdigit() else key for key in unique]

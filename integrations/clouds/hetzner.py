"""Hetzner Cloud adapter (https://docs.hetzner.cloud) on the one request pipeline (VendorClient).

Servers are created with delete and rebuild protection switched on; `delete_server` lifts it
first. Every request asks the shared rate budget first and tells it what the answer said
(RateLimit-* headers), so workers stop together when the project's budget is spent. The API
token only ever travels in the Authorization header: it is never logged nor put in an error.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NotRequired, TypedDict, cast

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

PER_PAGE = 50  # Hetzner's maximum page size
LOCKED_RETRY_SECONDS = 5.0  # a running action holds the lock; Hetzner's actions are short
# Labels that tie a server to the job (or Beacon) that made it: a server whose name is taken
# is adopted only when one of them matches, never a stranger's server of the same name.
OWNER_LABELS = ("wopr-job", "wopr-beacon")

TRANSIENT_CODES = frozenset(
    {"rate_limit_exceeded", "conflict", "timeout", "server_error", "service_error",
     "maintenance", "unavailable", "locked", "protected"}
)  # fmt: skip
CAPACITY_CODES = frozenset({"resource_unavailable", "placement_error"})
SHORT_WAIT_CODES = frozenset({"locked", "protected"})  # an action is still running: wait briefly
COMING_UP = frozenset({"initializing", "starting"})  # a new server's states before running
IMAGE_STATUS: dict[str, SnapshotStatus] = {"creating": "creating", "available": "available"}


# --- the JSON shapes we read -----------------------------------------------------------------
class ErrorJson(TypedDict):
    code: str
    message: str
    details: NotRequired[dict[str, Any] | None]


class ActionJson(TypedDict):
    id: int
    command: str
    status: str  # "running" | "success" | "error"


class IpJson(TypedDict):
    ip: str


class PublicNetJson(TypedDict):
    ipv4: IpJson | None
    ipv6: IpJson | None


class NamedJson(TypedDict):
    id: int
    name: str


class ServerJson(TypedDict):
    id: int
    name: str
    status: str
    labels: dict[str, str]
    location: NamedJson
    server_type: NamedJson
    public_net: PublicNetJson
    protection: dict[str, bool]
    created: str


class CreatedFromJson(TypedDict):
    id: int
    name: str


class ImageJson(TypedDict):
    id: int
    type: str  # "system" | "app" | "snapshot" | "backup"
    status: str  # "creating" | "available" | "unavailable"
    description: str
    image_size: float | None  # GB; null while the snapshot is being made
    created: str
    created_from: CreatedFromJson | None
    labels: dict[str, str]


class AmountJson(TypedDict):
    net: str
    gross: str


class PriceJson(TypedDict):
    location: str
    price_monthly: AmountJson


class ServerTypeJson(TypedDict):
    name: str
    cores: int
    memory: float
    disk: float
    deprecated: bool | None
    prices: list[PriceJson]


# --- error classification --------------------------------------------------------------------
def hetzner_error(response: httpx.Response) -> ProviderError:
    """The ProviderError an error answer means: transient, capacity or permanent (pure)."""
    status = response.status_code
    error = _error_body(response)
    code = error.get("code") or f"http_{status}"
    message = error.get("message") or response.reason_phrase
    text = f"Hetzner {code} (HTTP {status}): {message}"
    if code in CAPACITY_CODES or status == 412 or "location disabled" in message.lower():
        return ProviderError(text, transient=False, capacity=True, code=code)
    if code == "rate_limit_exceeded" or status == 429:
        return ProviderError(
            text, transient=True, code="rate_limit_exceeded", retry_after=_retry_after(response)
        )
    if code in SHORT_WAIT_CODES:
        return ProviderError(text, transient=True, code=code, retry_after=LOCKED_RETRY_SECONDS)
    if code in TRANSIENT_CODES or status >= 500:
        return ProviderError(text, transient=True, code=code)
    return ProviderError(text, transient=False, code=code)


def _error_body(response: httpx.Response) -> ErrorJson | dict[str, str]:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}  # a proxy's HTML page, an empty body
    return error if isinstance(error, dict) else {}


def _retry_after(response: httpx.Response) -> float:
    """Seconds to wait: Retry-After, else until RateLimit-Reset, else one second (the budget
    refills by one request a second)."""
    header = response.headers.get("Retry-After")
    if header and header.strip().isdigit():
        return float(header)
    reset = int_header(response, "RateLimit-Reset")
    if reset is not None:
        return max(reset - time.time(), 1.0)
    return 1.0


def hetzner_budget(response: httpx.Response, error: ProviderError | None) -> BudgetReading | None:
    """What the RateLimit-* headers (and a 429's wait) say about the project's budget."""
    remaining = int_header(response, "RateLimit-Remaining")
    limit = int_header(response, "RateLimit-Limit")
    reset = int_header(response, "RateLimit-Reset")
    limited = error is not None and error.code == "rate_limit_exceeded"
    if remaining is None and limit is None and not limited:
        return None  # the answer says nothing about the budget (a mock, a proxy's error page)
    return BudgetReading(
        remaining=remaining,
        limit=limit,
        reset_at=datetime.fromtimestamp(reset, tz=UTC) if reset is not None else None,
        retry_after=error.retry_after if limited and error is not None else None,
    )


class HetznerApi(VendorClient):
    """Hetzner's request pipeline: its error table and its RateLimit-* headers."""

    vendor = "Hetzner"
    error_class = ProviderError
    correlation_header = "X-Correlation-Id"

    def classify(self, response: httpx.Response) -> ProviderError:
        return hetzner_error(response)

    def budget_reading(self, response: httpx.Response, error: Any) -> BudgetReading | None:
        return hetzner_budget(response, error)


# --- the adapter -----------------------------------------------------------------------------
class HetznerProvider(CloudProvider):
    """Hetzner Cloud: servers with labels, delete protection, actions and a per-project budget."""

    kind = "hetzner"
    adopts_on_create = True  # names are unique per project; a taken name of ours is adopted

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        budget: RateBudget | None = None,
        ssh_keys: Sequence[str] = (),
    ) -> None:
        self.api = HetznerApi(base_url=base_url, token=token, budget=budget)
        self.base_url = self.api.base_url
        self.budget: RateBudget = self.api.budget
        self.ssh_keys = list(ssh_keys)

    def __repr__(self) -> str:  # never show the token
        return f"HetznerProvider(base_url={self.base_url!r})"

    # --- servers -----------------------------------------------------------------------------
    def create_server(self, spec: ServerSpec) -> Created:
        """POST /servers, then switch delete protection on. A name already taken by a server
        carrying the spec's wopr-job (or wopr-beacon) label is adopted: an earlier attempt made
        it and lost the answer. Action id "" then: there is no create action to wait for."""
        try:
            body = self._call("POST", "/servers", json=self._create_body(spec))
        except ProviderError as error:
            if error.code != "uniqueness_error":
                raise
            return self._adopt(spec, error)
        server = _server(body["server"])
        self.protect(server.id)
        return Created(server=replace(server, protected=True), action_id=str(body["action"]["id"]))

    def _create_body(self, spec: ServerSpec) -> dict[str, Any]:
        return {
            "name": spec.name,
            "server_type": spec.size,
            "image": spec.image,
            "location": spec.location,
            "labels": spec.labels,
            "user_data": spec.user_data,
            "ssh_keys": list(spec.ssh_keys or self.ssh_keys),
            "public_net": {"enable_ipv4": True, "enable_ipv6": True},
            "start_after_create": True,
        }

    def _adopt(self, spec: ServerSpec, error: ProviderError) -> Created:
        found = [_server(s) for s in self._pages("/servers", "servers", {"name": spec.name})]
        for server in found:
            if server.name == spec.name and _same_owner(server.labels, spec.labels):
                if not server.protected:
                    self.protect(server.id)
                logger.info("hetzner: adopted server %s (%s)", server.id, server.name)
                return Created(server=replace(server, protected=True), action_id="")
        raise error

    def protect(self, server_id: str) -> None:
        """Turn delete and rebuild protection on (so no stray call or console click loses it)."""
        self._change_protection(server_id, on=True)

    def _change_protection(self, server_id: str, *, on: bool) -> str:
        path = f"/servers/{_numeric(server_id)}/actions/change_protection"
        return _action_id(self._call("POST", path, json={"delete": on, "rebuild": on}))

    def get_server(self, server_id: str) -> Server | None:
        """GET /servers/{id}; None for an unknown id."""
        if not server_id.isdigit():
            return None
        try:
            return _server(self._call("GET", f"/servers/{server_id}")["server"])
        except ProviderError as error:
            if error.code == "not_found":
                return None
            raise

    def find_servers(self, labels: dict[str, str]) -> list[Server]:
        """Servers carrying every label, through Hetzner's label selector (`k==v,k2==v2`)."""
        params = {"label_selector": label_selector(labels)} if labels else {}
        return [_server(item) for item in self._pages("/servers", "servers", params)]

    def power_off(self, server_id: str) -> str:
        """Hard power-off (like pulling the plug); returns the action id."""
        return _action_id(self._call("POST", f"/servers/{_numeric(server_id)}/actions/poweroff"))

    def power_on(self, server_id: str) -> str:
        """Power on; returns the action id."""
        return _action_id(self._call("POST", f"/servers/{_numeric(server_id)}/actions/poweron"))

    def server_resize(self, server_id: str, size: str, *, grow_disk: bool = True) -> ResizeStarted:
        """POST /servers/{id}/actions/change_type; refused while on (`server_not_stopped`)."""
        path = f"/servers/{_numeric(server_id)}/actions/change_type"
        body = self._call("POST", path, json={"server_type": size, "upgrade_disk": grow_disk})
        return ResizeStarted(action_id=_action_id(body), size=size, grow_disk=grow_disk)

    def resize_in_progress(self, server_id: str) -> str | None:
        """GET /servers/{id}/actions?status=running: a change_server_type among them."""
        path = f"/servers/{_numeric(server_id)}/actions"
        running = self._pages(path, "actions", {"status": "running"})
        found = [a["id"] for a in running if a.get("command") == "change_server_type"]
        return str(found[0]) if found else None

    def delete_server(self, server_id: str) -> None:
        """Lift protection, then delete. Unknown servers are fine (idempotent); `protected` or
        `locked` answers (the lift is still running) are transient with a short retry_after."""
        if not server_id.isdigit():
            return
        try:
            self._change_protection(server_id, on=False)
            self._call("DELETE", f"/servers/{server_id}")
        except ProviderError as error:
            if error.code != "not_found":
                raise

    def create_failed(self, server: Server, action_id: str) -> bool:
        """A server still initializing or starting is on its way (no call); one that is off
        after its create may have failed: the action says."""
        if server.status in COMING_UP:
            return False
        return super().create_failed(server, action_id)

    def action_status(self, action_id: str) -> ActionStatus:
        """GET /actions/{id}: running, success or error (an unknown action counts as error)."""
        if not action_id.isdigit():
            return "error"
        try:
            status = self._call("GET", f"/actions/{action_id}")["action"]["status"]
        except ProviderError as error:
            if error.code == "not_found":
                return "error"
            raise
        return cast(ActionStatus, status if status in ("running", "success") else "error")

    # --- snapshots ---------------------------------------------------------------------------
    def create_snapshot(
        self, server_id: str, *, name: str, labels: dict[str, str]
    ) -> SnapshotStarted:
        """POST /servers/{id}/actions/create_image (type snapshot): the name travels as the
        image's description (snapshots have no name at Hetzner), the labels as labels. The
        image id is known at once; the action says when it is done."""
        path = f"/servers/{_numeric(server_id)}/actions/create_image"
        body = self._call(
            "POST", path, json={"type": "snapshot", "description": name, "labels": labels}
        )
        return SnapshotStarted(snapshot_id=str(body["image"]["id"]), action_id=_action_id(body))

    def find_snapshots(self, labels: dict[str, str]) -> list[Snapshot]:
        """GET /images?type=snapshot with the label selector, every page."""
        params = {"type": "snapshot"}
        if labels:
            params["label_selector"] = label_selector(labels)
        return [_snapshot(item) for item in self._pages("/images", "images", params)]

    def get_snapshot(self, snapshot_id: str) -> Snapshot | None:
        """GET /images/{id}; None for an unknown id."""
        if not snapshot_id.isdigit():
            return None
        try:
            return _snapshot(self._call("GET", f"/images/{snapshot_id}")["image"])
        except ProviderError as error:
            if error.code == "not_found":
                return None
            raise

    def delete_snapshot(self, snapshot_id: str) -> None:
        """DELETE /images/{id}; an image already gone is fine (idempotent)."""
        if not snapshot_id.isdigit():
            return
        try:
            self._call("DELETE", f"/images/{snapshot_id}")
        except ProviderError as error:
            if error.code != "not_found":
                raise

    def snapshot_price_per_gb_month(self, location: str) -> Decimal:
        """GET /pricing: image.price_per_gb_month, net (VAT excluded, as server prices are
        read). Hetzner prices images the same in every location."""
        price = self._call("GET", "/pricing")["pricing"]["image"]["price_per_gb_month"]
        try:
            return Decimal(price["net"])
        except (KeyError, TypeError, InvalidOperation):
            raise ProviderError(
                "Hetzner answered /pricing without an image price",
                transient=True,
                code="bad_response",
            ) from None

    # --- catalogue ---------------------------------------------------------------------------
    def list_locations(self) -> list[Location]:
        """Every location (Hetzner does not say per location whether it takes orders)."""
        return [Location(name=item["name"]) for item in self._pages("/locations", "locations")]

    def list_server_types(self) -> list[ServerType]:
        """Every server type with its monthly net price (VAT excluded) per location."""
        return [_server_type(item) for item in self._pages("/server_types", "server_types")]

    # --- HTTP --------------------------------------------------------------------------------
    def _pages(self, path: str, key: str, params: dict[str, str] | None = None) -> Iterator[Any]:
        """Every item of a paginated list, following meta.pagination.next_page to the end."""
        return self.api.pages(
            path,
            items=lambda body: body.get(key) or [],
            next_page=_next_page,
            params={**(params or {}), "per_page": PER_PAGE},
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.api.request(method, path, **kwargs)


# --- parsing ---------------------------------------------------------------------------------
def label_selector(labels: dict[str, str]) -> str:
    """Hetzner's selector for "carries all of these labels": `k==v,k2==v2`."""
    return ",".join(f"{key}=={value}" for key, value in labels.items())


def _same_owner(found: dict[str, str], wanted: dict[str, str]) -> bool:
    return any(key in wanted and found.get(key) == wanted[key] for key in OWNER_LABELS)


def _next_page(body: dict[str, Any], page: int) -> int | None:
    return ((body.get("meta") or {}).get("pagination") or {}).get("next_page") or None


def _numeric(server_id: str) -> str:
    if not server_id.isdigit():
        raise ProviderError(f"server {server_id!r} not found", transient=False, code="not_found")
    return server_id


def _action_id(body: dict[str, Any]) -> str:
    return str(cast(ActionJson, body["action"])["id"])


def _server(data: ServerJson) -> Server:
    public = data.get("public_net") or {}
    ipv4 = (public.get("ipv4") or {}).get("ip")
    ipv6 = (public.get("ipv6") or {}).get("ip")
    return Server(
        id=str(data["id"]),
        name=data["name"],
        status=data["status"],
        location=data["location"]["name"],
        size=data["server_type"]["name"],
        labels=dict(data.get("labels") or {}),
        ipv4=ipv4 or None,
        ipv6=_host_address(ipv6),
        protected=bool((data.get("protection") or {}).get("delete")),
        created_at=parse_timestamp(data.get("created")),
    )


def _snapshot(data: ImageJson) -> Snapshot:
    created_from = data.get("created_from") or {}
    size = data.get("image_size")
    labels = dict(data.get("labels") or {})
    return Snapshot(
        id=str(data["id"]),
        name=data.get("description") or labels.get("wopr-snapshot") or "",
        labels=labels,
        status=IMAGE_STATUS.get(data["status"], "error"),
        size_gb=float(size) if size is not None else None,
        server_id=str(created_from["id"]) if created_from.get("id") else None,
        created_at=parse_timestamp(data.get("created")),
    )


def _host_address(network: str | None) -> str | None:
    """Hetzner reports the server's IPv6 /64 ("2001:db8:1::/64"); its address is "...::1"."""
    if not network:
        return None
    try:
        net = ipaddress.IPv6Network(network, strict=False)
    except ValueError:
        return None
    if net.prefixlen == 128:
        return str(net.network_address)
    return str(net.network_address + 1)


def _server_type(data: ServerTypeJson) -> ServerType:
    prices: dict[str, Decimal] = {}
    for price in data.get("prices") or []:
        try:
            prices[price["location"]] = Decimal(price["price_monthly"]["net"])
        except (KeyError, InvalidOperation):
            continue
    return ServerType(
        name=data["name"],
        cores=int(data["cores"]),
        memory_gb=float(data["memory"]),
        disk_gb=int(data["disk"]),
        monthly_price=prices,
        deprecated=bool(data.get("deprecated")),
    )

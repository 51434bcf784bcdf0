"""A stateful fake of DigitalOcean's v2 API: droplets, their actions, regions and sizes.

It answers in DigitalOcean's shapes (the tests validate every answer against DigitalOcean's
OpenAPI document) for the endpoints the adapter uses. Behaviour worth knowing:

- Bearer token required (401 otherwise); `ratelimit-*` headers on every answer; once
  `ratelimit_remaining` reaches 0 the next request gets 429 with Retry-After.
- An action is `in-progress` for its first `action_polls` looks (a GET of the action or of its
  droplet), then `completed`; only then does the droplet change (new → active, active ↔ off).
  A droplet with an action in progress refuses another (422 "pending event").
- Tags are applied at creation, so `?tag_name=` finds a droplet at once.
- A `snapshot` droplet action makes a private image of type "snapshot" once it completed (not
  before: DigitalOcean lists a snapshot only when it is done); `/v2/images` lists, shows and
  deletes them, and a droplet can be created from one (image = its id, in its region).
- `unavailable_regions`: creates there get 422 "... is not available in this region".
- Lists paginate (`per_page`, `page`, links.pages.next/last/first/prev, meta.total).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from fakes import FakeVendor

REGIONS = {
    "nyc1": "New York 1",
    "nyc3": "New York 3",
    "sfo2": "San Francisco 2",
    "sfo3": "San Francisco 3",
    "fra1": "Frankfurt 1",
    "ams3": "Amsterdam 3",
}
# slug: (vcpus, memory MB, disk GB, transfer TB, price per month, regions where not sold)
SIZES: dict[str, tuple[int, int, int, float, float, tuple[str, ...]]] = {
    "s-2vcpu-4gb": (2, 4096, 80, 4.0, 24.0, ()),
    "s-4vcpu-8gb": (4, 8192, 160, 5.0, 48.0, ()),
    "s-8vcpu-16gb": (8, 16384, 320, 6.0, 96.0, ()),
    "s-8vcpu-32gb": (8, 32768, 640, 7.0, 192.0, ("sfo2",)),
}
IMAGES = {
    "debian-12-x64": (152093433, "12 x64", "Debian"),
    "ubuntu-24-04-x64": (155429286, "24.04 (LTS) x64", "Ubuntu"),
}
REGION_FEATURES = ["backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"]
NAME = re.compile(r"^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$")
TAG = re.compile(r"^[A-Za-z0-9:_-]{1,255}$")
POWER_EFFECT = {
    "power_off": "off",
    "shutdown": "off",
    "power_on": "active",
    "reboot": "active",
    "power_cycle": "active",
}
SNAPSHOT_SHARE_OF_DISK = 20  # a fresh system's snapshot is about a twentieth of its disk
TEST_TOKEN = "do-test-token"  # noqa: S105  (the fake's default; no real secret)
NOT_FOUND = "The resource you requested could not be found."


@dataclass
class FakeDroplet:
    id: int
    name: str
    region: str
    size: str
    image: str
    tags: list[str]
    ipv6: bool
    user_data: str
    ssh_keys: list[Any]
    monitoring: bool
    created_at: str
    status: str = "new"
    disk: int = 0  # GB; 0: the size's own (a resize without `disk` keeps the old one)


@dataclass
class FakeAction:
    id: int
    type: str
    droplet_id: int
    region: str
    started_at: str
    effect: str  # the droplet status once completed
    status: str = "in-progress"
    completed_at: str | None = None
    looks: int = 0
    snapshot_name: str | None = None  # a snapshot action: the image it makes when done
    resize_to: tuple[str, int] | None = None  # a resize action: (size, disk) once done


@dataclass
class FakeImage:
    id: int
    name: str
    region: str
    size_gigabytes: float
    min_disk_size: int
    created_at: str


@dataclass
class FakeDigitalOceanState:
    droplets: dict[int, FakeDroplet] = field(default_factory=dict)
    actions: dict[int, FakeAction] = field(default_factory=dict)
    images: dict[int, FakeImage] = field(default_factory=dict)
    next_droplet_id: int = 3164444
    next_action_id: int = 36804636
    next_image_id: int = 181000001


class FakeDigitalOcean(FakeVendor):
    """DigitalOcean in memory; `fake.transport()` for httpx, `serve(fake)` for real HTTP."""

    def __init__(
        self,
        *,
        token: str = TEST_TOKEN,
        action_polls: int = 1,
        ratelimit_limit: int = 5000,
        ratelimit_remaining: int = 5000,
        ratelimit_window: int = 3600,
        unavailable_regions: set[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.token = token
        self.action_polls = action_polls
        self.ratelimit_limit = ratelimit_limit
        self.ratelimit_remaining = ratelimit_remaining
        self.ratelimit_window = ratelimit_window
        self.unavailable_regions = set(unavailable_regions or ())
        self.clock = clock
        self.state = FakeDigitalOceanState()

    @property
    def droplets(self) -> dict[int, FakeDroplet]:
        return self.state.droplets

    @property
    def actions(self) -> dict[int, FakeAction]:
        return self.state.actions

    @property
    def images(self) -> dict[int, FakeImage]:
        return self.state.images

    def add_snapshot(self, name: str, *, region: str = "fra1", disk: int = 80) -> FakeImage:
        """A droplet snapshot that exists already (as if an earlier action made it)."""
        with self.lock:
            image = FakeImage(
                id=self.state.next_image_id,
                name=name,
                region=region,
                size_gigabytes=round(disk / SNAPSHOT_SHARE_OF_DISK, 2),
                min_disk_size=disk,
                created_at=self._now(),
            )
            self.state.next_image_id += 1
            self.state.images[image.id] = image
            return image

    def fail_action(self, action_id: int) -> None:
        """Make an action end in `errored` (its droplet stays as it was)."""
        with self.lock:
            action = self.state.actions[action_id]
            action.status, action.completed_at = "errored", self._now()

    # --- routing -------------------------------------------------------------------------
    def route(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self._error(401, "unauthorized", "Unable to authenticate you.", spend=False)
        if self.ratelimit_remaining <= 0:
            return self._error(
                429,
                "too_many_requests",
                "API rate limit exceeded.",
                spend=False,
                headers={"retry-after": str(self.ratelimit_window)},
            )
        path, method = request.url.path.rstrip("/"), request.method
        parts = path.split("/")[1:]  # ["v2", "droplets", "42", "actions"]
        if parts[:1] != ["v2"]:
            return self._error(404, "not_found", NOT_FOUND)
        match (method, parts[1:]):
            case ("GET", ["droplets"]):
                return self._list_droplets(request)
            case ("POST", ["droplets"]):
                return self._create_droplet(request)
            case ("GET", ["droplets", droplet_id]):
                return self._get_droplet(droplet_id)
            case ("DELETE", ["droplets", droplet_id]):
                return self._delete_droplet(droplet_id)
            case ("POST", ["droplets", droplet_id, "actions"]):
                return self._droplet_action(request, droplet_id)
            case ("GET", ["droplets", droplet_id, "actions"]):
                return self._list_droplet_actions(request, droplet_id)
            case ("GET", ["actions", action_id]):
                return self._get_action(action_id)
            case ("GET", ["images"]):
                return self._list_images(request)
            case ("GET", ["images", image_id]):
                return self._get_image(image_id)
            case ("DELETE", ["images", image_id]):
                return self._delete_image(image_id)
            case ("GET", ["regions"]):
                return self._list(request, "regions", [self._region(slug) for slug in REGIONS])
            case ("GET", ["sizes"]):
                return self._list(request, "sizes", [self._size(slug) for slug in SIZES])
        return self._error(404, "not_found", NOT_FOUND)

    # --- droplets --------------------------------------------------------------------------
    def _create_droplet(self, request: httpx.Request) -> httpx.Response:
        try:
            body = json.loads(request.content or b"{}")
        except ValueError:
            return self._error(400, "bad_request", "The request body is not valid JSON.")
        problem = self._create_problem(body)
        if problem:
            return self._error(422, "unprocessable_entity", problem)
        state = self.state
        region = body.get("region") or next(iter(REGIONS))
        droplet = FakeDroplet(
            id=state.next_droplet_id,
            name=body["name"],
            region=region,
            size=body["size"],
            image=str(body["image"]),
            tags=list(dict.fromkeys(body.get("tags") or [])),
            ipv6=bool(body.get("ipv6", False)),
            user_data=body.get("user_data") or "",
            ssh_keys=list(body.get("ssh_keys") or []),
            monitoring=bool(body.get("monitoring", False)),
            created_at=self._now(),
        )
        state.next_droplet_id += 1
        state.droplets[droplet.id] = droplet
        action = self._start_action(droplet, "create", effect="active")
        if self.on_create is not None:
            self.on_create(droplet.user_data)
        link = {
            "id": action.id,
            "rel": "create",
            "href": self._url(request, f"actions/{action.id}"),
        }
        return self._answer(202, {"droplet": self._droplet(droplet), "links": {"actions": [link]}})

    def _create_problem(self, body: Any) -> str:
        if not isinstance(body, dict):
            return "The request body must be an object."
        if "names" in body:
            return "The fake creates one droplet per request (send name, not names)."
        name, size, image = body.get("name"), body.get("size"), body.get("image")
        region = body.get("region")
        if not isinstance(name, str) or not NAME.match(name) or len(name) > 255:
            return "Name is invalid: only letters, numbers, dots and dashes."
        if size not in SIZES:
            return "You specified an invalid size for Droplet creation."
        if region is not None and region not in REGIONS:
            return "You specified an invalid region for Droplet creation."
        if image not in IMAGES and not self._snapshot_in(image, region):
            return "You specified an invalid image for Droplet creation."
        if region in self.unavailable_regions or region in SIZES[size][5]:
            return f"Size {size} is not available in this region."
        tags = body.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) and TAG.match(t) for t in tags):
            return "Tag names may only contain letters, numbers, colons, dashes and underscores."
        if len((body.get("user_data") or "").encode()) > 64 * 1024:
            return "User data must not exceed 64 KiB."
        return ""

    def _list_droplets(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        tag, name = params.get("tag_name"), params.get("name")
        if tag and name:
            return self._error(422, "unprocessable_entity", "tag_name and name cannot be combined.")
        droplets = [
            droplet
            for droplet in sorted(self.state.droplets.values(), key=lambda d: d.id)
            if (not tag or tag in droplet.tags)
            and (not name or droplet.name.lower() == name.lower())
        ]
        return self._list(request, "droplets", [self._droplet(d) for d in droplets])

    def _get_droplet(self, droplet_id: str) -> httpx.Response:
        droplet = self._find_droplet(droplet_id)
        if droplet is None:
            return self._error(404, "not_found", NOT_FOUND)
        for action in list(self.state.actions.values()):
            if action.droplet_id == droplet.id:
                self._look(action)
        return self._answer(200, {"droplet": self._droplet(droplet)})

    def _delete_droplet(self, droplet_id: str) -> httpx.Response:
        droplet = self._find_droplet(droplet_id)
        if droplet is None:
            return self._error(404, "not_found", NOT_FOUND)
        del self.state.droplets[droplet.id]
        return self._answer(204, None)

    def _droplet_action(self, request: httpx.Request, droplet_id: str) -> httpx.Response:
        droplet = self._find_droplet(droplet_id)
        if droplet is None:
            return self._error(404, "not_found", NOT_FOUND)
        try:
            body = json.loads(request.content or b"{}")
            kind = body.get("type")
        except (ValueError, AttributeError):
            body, kind = {}, None
        if kind not in POWER_EFFECT and kind not in ("snapshot", "resize"):
            return self._error(422, "unprocessable_entity", f"Action type {kind!r} is not valid.")
        if self._pending(droplet):
            return self._error(422, "unprocessable_entity", "Droplet already has a pending event.")
        problem = self._resize_problem(droplet, body) if kind == "resize" else None
        if problem is not None:
            return problem
        effect = POWER_EFFECT.get(kind, droplet.status)  # a snapshot leaves the droplet as it is
        action = self._start_action(droplet, kind, effect=effect)
        if kind == "resize":
            disk = SIZES[body["size"]][2] if body.get("disk") else self._disk(droplet)
            action.resize_to = (body["size"], disk)
        if kind == "snapshot":
            action.snapshot_name = str(body.get("name") or f"{droplet.name}-{int(self.clock())}")
        return self._answer(201, {"action": self._action(action)})

    def _resize_problem(self, droplet: FakeDroplet, body: dict[str, Any]) -> httpx.Response | None:
        """A resize needs the droplet off and a size whose disk is not smaller than its own."""
        if body.get("size") not in SIZES:
            return self._error(422, "unprocessable_entity", "You specified an invalid size.")
        if droplet.status != "off":
            return self._error(422, "unprocessable_entity", "Droplet must be powered off.")
        if SIZES[body["size"]][2] < self._disk(droplet):
            message = "This size is not available because it has a smaller disk."
            return self._error(422, "unprocessable_entity", message)
        return None

    def _disk(self, droplet: FakeDroplet) -> int:
        return droplet.disk or SIZES[droplet.size][2]

    def _list_droplet_actions(self, request: httpx.Request, droplet_id: str) -> httpx.Response:
        droplet = self._find_droplet(droplet_id)
        if droplet is None:
            return self._error(404, "not_found", NOT_FOUND)
        mine = [a for a in self.state.actions.values() if a.droplet_id == droplet.id]
        newest_first = sorted(mine, key=lambda action: -action.id)
        return self._list(request, "actions", [self._action(a) for a in newest_first])

    # --- images (droplet snapshots) --------------------------------------------------------
    def _list_images(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if params.get("type") or params.get("tag_name"):  # our snapshots: no type, no tags
            return self._list(request, "images", [])
        public = [] if params.get("private") == "true" else [self._image(s) for s in IMAGES]
        ours = [self._snapshot(image) for _, image in sorted(self.state.images.items())]
        return self._list(request, "images", public + ours)

    def _get_image(self, image_id: str) -> httpx.Response:
        image = self.state.images.get(int(image_id)) if image_id.isdigit() else None
        if image is None:
            return self._error(404, "not_found", NOT_FOUND)
        return self._answer(200, {"image": self._snapshot(image)})

    def _delete_image(self, image_id: str) -> httpx.Response:
        image = self.state.images.get(int(image_id)) if image_id.isdigit() else None
        if image is None:
            return self._error(404, "not_found", NOT_FOUND)
        del self.state.images[image.id]
        return self._answer(204, None)

    def _snapshot_in(self, image: Any, region: str | None) -> bool:
        found = self.state.images.get(image) if isinstance(image, int) else None
        return found is not None and region in (None, found.region)

    # --- actions ---------------------------------------------------------------------------
    def _get_action(self, action_id: str) -> httpx.Response:
        action = self.state.actions.get(int(action_id)) if action_id.isdigit() else None
        if action is None:
            return self._error(404, "not_found", NOT_FOUND)
        self._look(action)
        return self._answer(200, {"action": self._action(action)})

    def _start_action(self, droplet: FakeDroplet, kind: str, *, effect: str) -> FakeAction:
        action = FakeAction(
            id=self.state.next_action_id,
            type=kind,
            droplet_id=droplet.id,
            region=droplet.region,
            started_at=self._now(),
            effect=effect,
        )
        self.state.next_action_id += 1
        self.state.actions[action.id] = action
        return action

    def _look(self, action: FakeAction) -> None:
        """One more look at an action; past `action_polls` looks it completes."""
        if action.status != "in-progress":
            return
        action.looks += 1
        if action.looks > self.action_polls:
            action.status, action.completed_at = "completed", self._now()
            droplet = self.state.droplets.get(action.droplet_id)
            if droplet is not None:
                droplet.status = action.effect
            if droplet is not None and action.resize_to is not None:
                droplet.size, droplet.disk = action.resize_to
            if action.snapshot_name is not None:
                disk = SIZES[droplet.size][2] if droplet is not None else 25
                self.add_snapshot(action.snapshot_name, region=action.region, disk=disk)

    def _pending(self, droplet: FakeDroplet) -> bool:
        return any(
            action.droplet_id == droplet.id and action.status == "in-progress"
            for action in self.state.actions.values()
        )

    # --- DigitalOcean's shapes -----------------------------------------------------------
    def _droplet(self, droplet: FakeDroplet) -> dict[str, Any]:
        vcpus, memory, _, _, _, _ = SIZES[droplet.size]
        disk = self._disk(droplet)
        features = ["private_networking"] + (["ipv6"] if droplet.ipv6 else [])
        features += ["monitoring"] if droplet.monitoring else []
        return {
            "id": droplet.id,
            "name": droplet.name,
            "memory": memory,
            "vcpus": vcpus,
            "disk": disk,
            "disk_info": [{"type": "local", "size": {"amount": disk, "unit": "gib"}}],
            "locked": self._pending(droplet),
            "status": droplet.status,
            "kernel": None,
            "created_at": droplet.created_at,
            "features": features,
            "backup_ids": [],
            "next_backup_window": None,
            "snapshot_ids": [],
            "image": self._droplet_image(droplet.image),
            "volume_ids": [],
            "size": self._size(droplet.size),
            "size_slug": droplet.size,
            "networks": self._networks(droplet),
            "region": self._region(droplet.region),
            "tags": list(droplet.tags),
            "vpc_uuid": str(uuid.UUID(int=droplet.id)),
        }

    def _networks(self, droplet: FakeDroplet) -> dict[str, list[dict[str, Any]]]:
        if droplet.status == "new":  # addresses come with the first boot
            return {"v4": [], "v6": []}
        host = droplet.id % 250 + 2
        v4 = [
            _network(f"203.0.113.{host}", "255.255.255.0", "203.0.113.1", "public"),
            _network(f"10.110.0.{host}", "255.255.240.0", "10.110.0.1", "private"),
        ]
        v6 = [
            _network(
                f"2001:db8:0:1::{droplet.id >> 16:x}:{droplet.id & 0xFFFF:x}",
                64,
                "2001:db8:0:1::1",
                "public",
            )
        ]
        return {"v4": v4, "v6": v6 if droplet.ipv6 else []}

    def _droplet_image(self, image: str) -> dict[str, Any]:
        if not image.isdigit():
            return self._image(image)
        # Made from a snapshot (which may be deleted since: the droplet still tells its id).
        found = self.state.images.get(int(image))
        return self._snapshot(
            found or FakeImage(int(image), "deleted", "fra1", 0.0, 0, self._now())
        )

    def _snapshot(self, image: FakeImage) -> dict[str, Any]:
        return {
            "id": image.id,
            "name": image.name,
            "distribution": "Debian",
            "slug": None,
            "public": False,
            "regions": [image.region],
            "created_at": image.created_at,
            "type": "snapshot",
            "min_disk_size": image.min_disk_size,
            "size_gigabytes": image.size_gigabytes,
            "description": "",
            "tags": [],
            "status": "available",
            "error_message": "",
        }

    def _image(self, slug: str) -> dict[str, Any]:
        image_id, name, distribution = IMAGES[slug]
        return {
            "id": image_id,
            "name": name,
            "distribution": distribution,
            "slug": slug,
            "public": True,
            "regions": list(REGIONS),
            "created_at": "2024-06-10T00:00:00Z",
            "type": "base",
            "min_disk_size": 10,
            "size_gigabytes": 1.5,
            "description": f"{distribution} {name}",
            "tags": [],
            "status": "available",
            "error_message": "",
        }

    def _region(self, slug: str) -> dict[str, Any]:
        return {
            "slug": slug,
            "name": REGIONS[slug],
            "features": list(REGION_FEATURES),
            "available": slug not in self.unavailable_regions,
            "sizes": [size for size, spec in SIZES.items() if slug not in spec[5]],
        }

    def _size(self, slug: str) -> dict[str, Any]:
        vcpus, memory, disk, transfer, monthly, not_sold = SIZES[slug]
        return {
            "slug": slug,
            "memory": memory,
            "vcpus": vcpus,
            "disk": disk,
            "transfer": transfer,
            "price_monthly": monthly,
            "price_hourly": round(monthly / 672, 5),
            "regions": [region for region in REGIONS if region not in not_sold],
            "available": True,
            "description": "Basic",
        }

    def _action(self, action: FakeAction) -> dict[str, Any]:
        return {
            "id": action.id,
            "status": action.status,
            "type": action.type,
            "started_at": action.started_at,
            "completed_at": action.completed_at,
            "resource_id": action.droplet_id,
            "resource_type": "droplet",
            "region": self._region(action.region),
            "region_slug": action.region,
        }

    # --- answers ---------------------------------------------------------------------------
    def _list(self, request: httpx.Request, key: str, items: list[Any]) -> httpx.Response:
        params = request.url.params
        try:
            per_page, page = int(params.get("per_page", 20)), int(params.get("page", 1))
        except ValueError:
            return self._error(400, "bad_request", "per_page and page must be integers.")
        if not 1 <= per_page <= 200 or page < 1:
            return self._error(400, "bad_request", "per_page must be 1-200 and page at least 1.")
        last = max((len(items) + per_page - 1) // per_page, 1)
        pages: dict[str, str] = {}
        if page > 1:
            pages["first"] = self._page_url(request, 1)
            pages["prev"] = self._page_url(request, page - 1)
        if page < last:
            pages["next"] = self._page_url(request, page + 1)
            pages["last"] = self._page_url(request, last)
        chunk = items[(page - 1) * per_page : page * per_page]
        return self._answer(
            200, {key: chunk, "links": {"pages": pages}, "meta": {"total": len(items)}}
        )

    def _page_url(self, request: httpx.Request, page: int) -> str:
        params = dict(request.url.params.items())
        params["page"] = str(page)
        return (
            f"{request.url.scheme}://{request.url.netloc.decode()}{request.url.path}?"
            + urlencode(params)
        )

    def _url(self, request: httpx.Request, path: str) -> str:
        return f"{request.url.scheme}://{request.url.netloc.decode()}/v2/{path}"

    def _error(
        self,
        status: int,
        code: str,
        message: str,
        *,
        spend: bool = True,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        request_id = str(uuid.uuid4())
        body = {"id": code, "message": message, "request_id": request_id}
        return self._answer(status, body, spend=spend, headers=headers, request_id=request_id)

    def _answer(
        self,
        status: int,
        body: dict[str, Any] | None,
        *,
        spend: bool = True,
        headers: dict[str, str] | None = None,
        request_id: str | None = None,
    ) -> httpx.Response:
        if spend:
            self.ratelimit_remaining = max(self.ratelimit_remaining - 1, 0)
        all_headers = {
            "ratelimit-limit": str(self.ratelimit_limit),
            "ratelimit-remaining": str(self.ratelimit_remaining),
            "ratelimit-reset": str(int(self.clock()) + self.ratelimit_window),
            "x-request-id": request_id or str(uuid.uuid4()),
            **(headers or {}),
        }
        if body is None:
            return httpx.Response(status, headers=all_headers)
        return httpx.Response(status, json=body, headers=all_headers)

    def _find_droplet(self, droplet_id: str) -> FakeDroplet | None:
        return self.state.droplets.get(int(droplet_id)) if droplet_id.isdigit() else None

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _network(address: str, netmask: str | int, gateway: str, kind: str) -> dict[str, Any]:
    return {"ip_address": address, "netmask": netmask, "gateway": gateway, "type": kind}

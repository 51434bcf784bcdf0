"""A stateful fake of the Hetzner Cloud API: every endpoint HetznerProvider uses, in its shapes.

Servers, actions, labels, protection and snapshot images live in memory; a snapshot is
`creating` until its create_image action succeeded, then `available`, and a server can be
created from it (image = its id). Actions start `running` and report
`success` once they have been read `action_polls` times. Every answer carries RateLimit-*
headers and an X-Correlation-Id; a spent budget answers 429. Paths are accepted with and
without the /v1 prefix (settings use https://api.hetzner.cloud/v1; Prism serves without it).
Prices and ids are made up; the shapes are validated against Hetzner's spec by the tests.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from fakes import FakeVendor

# id, name, city, country, latitude, longitude, network zone
LOCATIONS = [
    (1, "fsn1", "Falkenstein", "DE", 50.47612, 12.370071, "eu-central"),
    (2, "nbg1", "Nuremberg", "DE", 49.452102, 11.076665, "eu-central"),
    (3, "hel1", "Helsinki", "FI", 60.169855, 24.938379, "eu-central"),
    (4, "ash", "Ashburn, VA", "US", 39.045821, -77.487073, "us-east"),
    (5, "hil", "Hillsboro, OR", "US", 45.54222, -122.951924, "us-west"),
    (6, "sin", "Singapore", "SG", 1.283333, 103.833333, "ap-southeast"),
]
# id, name, cores, memory GB, disk GB, monthly net EUR in the EU (elsewhere: 25 % more)
SERVER_TYPES = [
    (111, "cpx22", 2, 4.0, 80, "7.9900"),
    (112, "cpx32", 4, 8.0, 160, "13.9900"),
    (113, "cpx42", 8, 16.0, 320, "25.4900"),
    (114, "cpx52", 12, 24.0, 480, "36.4900"),
]
OS_FLAVORS = {"alma", "centos", "debian", "fedora", "opensuse", "rocky", "ubuntu"}
TRAFFIC_BYTES = 20 * 1024**4
VAT = Decimal("1.19")
SNAPSHOT_PRICE_PER_GB = Decimal("0.0119")  # net EUR per GB and month, as Hetzner lists it
VOLUME_PRICE_PER_GB = Decimal("0.0440")
SNAPSHOT_SHARE_OF_DISK = 20  # a fresh system's snapshot is about a twentieth of its disk

Handler = Callable[[httpx.Request, "re.Match[str]"], httpx.Response]


def error(status: int, code: str, message: str, details: dict | None = None) -> httpx.Response:
    """An error answer in Hetzner's shape."""
    return httpx.Response(
        status, json={"error": {"code": code, "message": message, "details": details}}
    )


class FakeHetzner(FakeVendor):
    """Hetzner Cloud in memory. Configure the token, action latency, budget and capacity."""

    def __init__(
        self,
        *,
        token: str = "hetzner-test-token",  # noqa: S107  (a fake's token, not a secret)
        action_polls: int = 1,
        rate_limit: int = 3600,
        rate_remaining: int | None = None,
        retry_after: int = 1,
        unavailable_locations: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.token = token
        self.action_polls = action_polls
        self.rate_limit = rate_limit
        self.rate_remaining = rate_limit if rate_remaining is None else rate_remaining
        self.retry_after = retry_after
        self.unavailable_locations: set[str] = set(unavailable_locations)
        self.servers: dict[int, dict[str, Any]] = {}
        self.actions: dict[int, dict[str, Any]] = {}
        self.polls: dict[int, int] = {}
        self.images: dict[int, dict[str, Any]] = {}
        self._server_ids = itertools.count(4201)
        self._image_ids = itertools.count(310001)
        self._action_ids = itertools.count(9001)
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/servers"), self._list_servers),
            ("POST", re.compile(r"/servers"), self._create_server),
            ("GET", re.compile(r"/servers/(\d+)"), self._get_server),
            ("DELETE", re.compile(r"/servers/(\d+)"), self._delete_server),
            ("POST", re.compile(r"/servers/(\d+)/actions/(\w+)"), self._server_action),
            ("GET", re.compile(r"/servers/(\d+)/actions"), self._list_server_actions),
            ("GET", re.compile(r"/actions/(\d+)"), self._get_action),
            ("GET", re.compile(r"/images"), self._list_images),
            ("GET", re.compile(r"/images/(\d+)"), self._get_image),
            ("DELETE", re.compile(r"/images/(\d+)"), self._delete_image),
            ("GET", re.compile(r"/pricing"), self._pricing),
            ("GET", re.compile(r"/locations"), self._list_locations),
            ("GET", re.compile(r"/server_types"), self._list_server_types),
        ]

    # --- set-up helpers for tests -----------------------------------------------------------
    def add_server(
        self,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        location: str = "fsn1",
        server_type: str = "cpx22",
        protected: bool = False,
    ) -> dict[str, Any]:
        """A server that exists already (booted, running); returns its record."""
        server_id = next(self._server_ids)
        record = {
            "id": server_id,
            "name": name,
            "server_type": server_type,
            "location": location,
            "image": "ubuntu-24.04",
            "labels": dict(labels or {}),
            "protection": {"delete": protected, "rebuild": protected},
            "powered": True,
            "ipv4": True,
            "ipv6": True,
            "created": _now(),
            "create_action": None,
        }
        self.servers[server_id] = record
        return record

    # --- dispatch ---------------------------------------------------------------------------
    def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._with_headers(error(401, "unauthorized", "unable to authenticate"))
        if self.rate_remaining <= 0:
            limited = error(429, "rate_limit_exceeded", "limit of requests per hour reached")
            limited.headers["Retry-After"] = str(self.retry_after)
            return self._with_headers(limited)
        self.rate_remaining -= 1
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match and method == request.method:
                return self._with_headers(handler(request, match))
        return self._with_headers(error(404, "not_found", f"no route for {path}"))

    def _with_headers(self, response: httpx.Response) -> httpx.Response:
        reset = int(time.time()) + (self.rate_limit - max(self.rate_remaining, 0))
        response.headers["RateLimit-Limit"] = str(self.rate_limit)
        response.headers["RateLimit-Remaining"] = str(max(self.rate_remaining, 0))
        response.headers["RateLimit-Reset"] = str(reset)
        response.headers["X-Correlation-Id"] = uuid.uuid4().hex[:16]
        return response

    # --- servers ----------------------------------------------------------------------------
    def _list_servers(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        params = request.url.params
        found: Iterable[dict[str, Any]] = self.servers.values()  # ids ascend: insertion order
        if "name" in params:
            found = [record for record in found if record["name"] == params["name"]]
        if params.get("label_selector"):
            wanted = selector_terms(params["label_selector"])
            found = [r for r in found if _selected(wanted, r["labels"])]
        # Only the page asked for is rendered: thousands of servers stay cheap to page through.
        return self._page(request, "servers", list(found), self._server_json)

    def _create_server(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        try:
            body = json.loads(request.content or b"{}")
        except ValueError:
            return error(400, "json_error", "invalid JSON in the request body")
        problem = self._create_problem(body)
        if problem is not None:
            return problem
        record = self.add_server(
            body["name"],
            labels=body.get("labels"),
            location=body.get("location") or "fsn1",
            server_type=body["server_type"],
        )
        public_net = body.get("public_net") or {}
        record.update(
            image=str(body["image"]),
            ipv4=public_net.get("enable_ipv4", True),
            ipv6=public_net.get("enable_ipv6", True),
            powered=body.get("start_after_create", True),
        )
        action = self._action("create_server", record["id"])
        record["create_action"] = action["id"]
        if self.on_create is not None:
            self.on_create(str(body.get("user_data") or ""))
        starts = [self._action("start_server", record["id"])] if record["powered"] else []
        return httpx.Response(
            201,
            json={
                "action": action,
                "next_actions": starts,
                "root_password": None if body.get("ssh_keys") else "fake-root-password",
                "server": self._server_json(record),
            },
        )

    def _create_problem(self, body: dict[str, Any]) -> httpx.Response | None:
        missing = [key for key in ("name", "server_type", "image") if not body.get(key)]
        if missing:
            fields = [{"name": key, "messages": ["is required"]} for key in missing]
            return error(422, "invalid_input", f"missing {', '.join(missing)}", {"fields": fields})
        if _server_type(body["server_type"]) is None:
            return error(422, "invalid_input", f"unknown server type {body['server_type']!r}")
        location = body.get("location") or "fsn1"
        if _location(location) is None:
            return error(422, "invalid_input", f"unknown location {location!r}")
        if location in self.unavailable_locations:
            return error(412, "resource_unavailable", "server location disabled")
        if str(body["image"]).isdigit() and not self._image_ready(int(body["image"])):
            return error(422, "invalid_input", f"image {body['image']} not found or not available")
        if any(record["name"] == body["name"] for record in self.servers.values()):
            details = {"fields": [{"name": "name"}]}
            return error(409, "uniqueness_error", "server name is already used", details)
        return None

    def _get_server(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        record = self.servers.get(int(match[1]))
        if record is None:
            return error(404, "not_found", f"server with ID '{match[1]}' not found")
        # A real server boots whether or not anyone polls its action; a look at the server
        # counts as time passing too.
        for key in ("create_action", "resize_action"):
            running = self.actions.get(record.get(key) or 0)
            if running is not None:
                self._tick(running)
        return httpx.Response(200, json={"server": self._server_json(record)})

    def _delete_server(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        record = self.servers.get(int(match[1]))
        if record is None:
            return error(404, "not_found", f"server with ID '{match[1]}' not found")
        if record["protection"]["delete"]:
            return error(423, "protected", "server deletion is protected")
        del self.servers[record["id"]]
        return httpx.Response(200, json={"action": self._action("delete_server", record["id"])})

    def _server_action(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        record = self.servers.get(int(match[1]))
        if record is None:
            return error(404, "not_found", f"server with ID '{match[1]}' not found")
        verb = match[2]
        if verb == "change_protection":
            body = json.loads(request.content or b"{}")
            for key in ("delete", "rebuild"):
                if key in body:
                    record["protection"][key] = bool(body[key])
        elif verb in ("poweroff", "poweron"):
            record["powered"] = verb == "poweron"
        elif verb == "create_image":
            return self._create_image(request, record)
        elif verb == "change_type":
            return self._change_type(request, record)
        else:
            return error(404, "not_found", f"no action {verb}")
        command = {"poweroff": "stop_server", "poweron": "start_server"}.get(verb, verb)
        return httpx.Response(201, json={"action": self._action(command, record["id"])})

    def _change_type(self, request: httpx.Request, server: dict[str, Any]) -> httpx.Response:
        """change_type: only while off and idle, never to a smaller disk than the server's;
        the new type (and disk, with upgrade_disk) applies once the action succeeded."""
        body = json.loads(request.content or b"{}")
        wanted = _server_type(str(body.get("server_type")))
        if wanted is None:
            return error(422, "invalid_input", f"unknown server type {body.get('server_type')!r}")
        if server["powered"]:
            return error(409, "server_not_stopped", "the server must be stopped to change type")
        if self._server_busy(server["id"]):
            return error(423, "locked", "the server is locked by a running action")
        disk = self._disk(server)
        if wanted[4] < disk:
            return error(422, "invalid_server_type", "the server type's disk is too small")
        action = self._action("change_server_type", server["id"])
        server["resize_action"] = action["id"]
        server["resize_to"] = (wanted[1], wanted[4] if body.get("upgrade_disk", True) else disk)
        return httpx.Response(201, json={"action": action})

    def _list_server_actions(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        server_id = int(match[1])
        if server_id not in self.servers:
            return error(404, "not_found", f"server with ID '{match[1]}' not found")
        status = request.url.params.get("status")
        found = [
            action
            for action in self.actions.values()
            if {"id": server_id, "type": "server"} in action["resources"]
            and status in (None, action["status"])
        ]
        return self._page(request, "actions", found, dict)

    def _server_busy(self, server_id: int) -> bool:
        """A change of type or an image in the making holds the server's lock."""
        mine = {"id": server_id, "type": "server"}
        return any(
            action["status"] == "running"
            and action["command"] in ("change_server_type", "create_image")
            and mine in action["resources"]
            for action in self.actions.values()
        )

    def _disk(self, server: dict[str, Any]) -> int:
        return server.get("disk") or (_server_type(server["server_type"]) or SERVER_TYPES[0])[4]

    def _settle_resize(self, server: dict[str, Any]) -> None:
        action = self.actions.get(server.get("resize_action") or 0)
        if action is not None and action["status"] == "success":
            server["server_type"], server["disk"] = server.pop("resize_to")
            server["resize_action"] = None

    # --- snapshot images --------------------------------------------------------------------
    def add_snapshot(
        self, description: str, *, labels: dict[str, str] | None = None, server_id: int = 4200
    ) -> dict[str, Any]:
        """A snapshot that exists already (available); returns its record."""
        image_id = next(self._image_ids)
        self.images[image_id] = {
            "id": image_id,
            "description": description,
            "labels": dict(labels or {}),
            "created": _now(),
            "created_from": {"id": server_id, "name": f"server-{server_id}"},
            "disk_size": 80,
            "os_flavor": "debian",
            "action": None,
        }
        return self.images[image_id]

    def _create_image(self, request: httpx.Request, server: dict[str, Any]) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        if body.get("type", "snapshot") != "snapshot":
            return error(422, "invalid_input", "backups are not enabled for this server")
        disk = (_server_type(server["server_type"]) or SERVER_TYPES[0])[4]
        image = self.add_snapshot(
            body.get("description") or f"server-{server['id']}-snapshot",
            labels=body.get("labels"),
            server_id=server["id"],
        )
        flavor = str(server["image"]).partition("-")[0]
        image.update(
            created_from={"id": server["id"], "name": server["name"]},
            disk_size=disk,
            os_flavor=flavor if flavor in OS_FLAVORS else "unknown",
        )
        action = self._action("create_image", server["id"])
        action["resources"].append({"id": image["id"], "type": "image"})  # shared with the log
        image["action"] = action["id"]
        return httpx.Response(201, json={"action": action, "image": self._snapshot_json(image)})

    def _list_images(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        params = request.url.params
        found = list(self.images.values()) if params.get_list("type") in ([], ["snapshot"]) else []
        if params.get("label_selector"):
            wanted = selector_terms(params["label_selector"])
            found = [image for image in found if _selected(wanted, image["labels"])]
        return self._page(request, "images", found, self._snapshot_json)

    def _get_image(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        image = self.images.get(int(match[1]))
        if image is None:
            return error(404, "not_found", f"image with ID '{match[1]}' not found")
        # As with servers: a look at the image counts as time passing for its action.
        creating = self.actions.get(image["action"] or 0)
        if creating is not None:
            self._tick(creating)
        return httpx.Response(200, json={"image": self._snapshot_json(image)})

    def _delete_image(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        if self.images.pop(int(match[1]), None) is None:
            return error(404, "not_found", f"image with ID '{match[1]}' not found")
        return httpx.Response(204)

    def _image_ready(self, image_id: int) -> bool:
        image = self.images.get(image_id)
        return image is not None and self._snapshot_json(image)["status"] == "available"

    def _pricing(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        server_types = [
            {"id": row[0], "name": row[1], "prices": self._server_type_json(row)["prices"]}
            for row in SERVER_TYPES
        ]
        pricing = {
            "currency": "EUR",
            "vat_rate": "19.00",
            "floating_ip": {"price_monthly": _amount(Decimal("3.00"))},
            "floating_ips": [],
            "image": {"price_per_gb_month": _amount(SNAPSHOT_PRICE_PER_GB)},
            "load_balancer_types": [],
            "primary_ips": [],
            "server_backup": {"percentage": "20.00"},
            "server_types": server_types,
            "volume": {"price_per_gb_month": _amount(VOLUME_PRICE_PER_GB)},
        }
        return httpx.Response(200, json={"pricing": pricing})

    # --- actions ----------------------------------------------------------------------------
    def _action(self, command: str, server_id: int) -> dict[str, Any]:
        action_id = next(self._action_ids)
        self.actions[action_id] = {
            "id": action_id,
            "command": command,
            "status": "running",
            "progress": 0,
            "started": _now(),
            "finished": None,
            "error": None,
            "resources": [{"id": server_id, "type": "server"}],
        }
        return dict(self.actions[action_id])

    def _get_action(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        action = self.actions.get(int(match[1]))
        if action is None:
            return error(404, "not_found", f"action with ID '{match[1]}' not found")
        self._tick(action)
        return httpx.Response(200, json={"action": action})

    def _tick(self, action: dict[str, Any]) -> None:
        """One more look at a running action: it succeeds after `action_polls` looks."""
        self.polls[action["id"]] = self.polls.get(action["id"], 0) + 1
        if action["status"] == "running" and self.polls[action["id"]] > self.action_polls:
            action.update(status="success", progress=100, finished=_now())

    # --- catalogue --------------------------------------------------------------------------
    def _list_locations(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        return self._page(request, "locations", [_location_json(row) for row in LOCATIONS])

    def _list_server_types(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        types = [self._server_type_json(row) for row in SERVER_TYPES]
        return self._page(request, "server_types", types)

    def _page(
        self,
        request: httpx.Request,
        key: str,
        items: list[Any],
        render: Callable[[Any], Any] = lambda item: item,
    ) -> httpx.Response:
        """One page of `items` (each passed through `render`) with Hetzner's meta.pagination
        (per_page at most 50)."""
        try:
            page = max(int(request.url.params.get("page", 1)), 1)
            per_page = min(max(int(request.url.params.get("per_page", 25)), 1), 50)
        except ValueError:
            return error(422, "invalid_input", "page and per_page must be integers")
        last = max(math.ceil(len(items) / per_page), 1)
        pagination = {
            "page": page,
            "per_page": per_page,
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < last else None,
            "last_page": last,
            "total_entries": len(items),
        }
        chunk = [render(item) for item in items[(page - 1) * per_page : page * per_page]]
        return httpx.Response(200, json={key: chunk, "meta": {"pagination": pagination}})

    # --- shapes -----------------------------------------------------------------------------
    def _server_json(self, record: dict[str, Any]) -> dict[str, Any]:
        self._settle_resize(record)
        creating = self.actions.get(record["create_action"] or 0, {}).get("status") == "running"
        status = "initializing" if creating else ("running" if record["powered"] else "off")
        if record.get("resize_action"):
            status = "migrating"
        location = _location_json(_location(record["location"]) or LOCATIONS[0])
        server_type = self._server_type_json(_server_type(record["server_type"]) or SERVER_TYPES[0])
        return {
            "id": record["id"],
            "name": record["name"],
            "status": status,
            "created": record["created"],
            "labels": record["labels"],
            "location": location,
            "datacenter": _datacenter_json(location),
            "server_type": server_type,
            "image": self._server_image_json(record),
            "iso": None,
            "protection": dict(record["protection"]),
            "public_net": _public_net_json(record),
            "private_net": [],
            "backup_window": None,
            "rescue_enabled": False,
            "locked": False,
            "included_traffic": TRAFFIC_BYTES,
            "ingoing_traffic": 0,
            "outgoing_traffic": 0,
            "primary_disk_size": self._disk(record),
            "load_balancers": [],
            "volumes": [],
            "placement_group": None,
        }

    def _server_image_json(self, record: dict[str, Any]) -> dict[str, Any]:
        image = record["image"]
        if image.isdigit() and int(image) in self.images:  # made from one of our snapshots
            return self._snapshot_json(self.images[int(image)])
        return _image_json(image, record["created"])

    def _snapshot_json(self, image: dict[str, Any]) -> dict[str, Any]:
        running = self.actions.get(image["action"] or 0, {}).get("status") == "running"
        size = round(image["disk_size"] / SNAPSHOT_SHARE_OF_DISK, 2)
        return {
            "id": image["id"],
            "name": None,  # snapshots have a description, not a name
            "description": image["description"],
            "type": "snapshot",
            "status": "creating" if running else "available",
            "architecture": "x86",
            "created": image["created"],
            "created_from": dict(image["created_from"]),
            "bound_to": None,
            "deleted": None,
            "deprecated": None,
            "disk_size": image["disk_size"],
            "image_size": None if running else size,
            "labels": dict(image["labels"]),
            "os_flavor": image["os_flavor"],
            "os_version": None,
            "protection": {"delete": False},
            "rapid_deploy": False,
        }

    def _server_type_json(self, row: tuple) -> dict[str, Any]:
        type_id, name, cores, memory, disk, eu_price = row
        prices = []
        for _, location, _, country, *_ in LOCATIONS:
            net = Decimal(eu_price) * (1 if country in ("DE", "FI") else Decimal("1.25"))
            prices.append(
                {
                    "location": location,
                    "included_traffic": TRAFFIC_BYTES,
                    "price_hourly": _amount(net / 730),
                    "price_monthly": _amount(net),
                    "price_per_tb_traffic": _amount(Decimal("1.00")),
                }
            )
        locations = [
            {
                "id": loc[0],
                "name": loc[1],
                "deprecation": None,
                "available": loc[1] not in self.unavailable_locations,
                "recommended": True,
            }
            for loc in LOCATIONS
        ]
        return {
            "id": type_id,
            "name": name,
            "description": name.upper(),
            "category": "Shared vCPU",
            "cores": cores,
            "memory": memory,
            "disk": disk,
            "cpu_type": "shared",
            "architecture": "x86",
            "storage_type": "local",
            "deprecated": False,
            "deprecation": None,
            "locations": locations,
            "prices": prices,
        }


def selects(selector: str, labels: dict[str, str]) -> bool:
    """Whether `labels` satisfy a label selector (`k==v`, `k=v`, `k!=v`, `k`, `!k`, joined
    by commas; the set forms `k in (...)` are not supported)."""
    return _selected(selector_terms(selector), labels)


def selector_terms(selector: str) -> list[tuple[str, str, str | None]]:
    """A selector parsed once: (operator, key, value) with operator "==", "!=", "has", "not"."""
    terms: list[tuple[str, str, str | None]] = []
    for term in filter(None, (part.strip() for part in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            terms.append(("!=", key, value))
        elif "=" in term:
            key, value = re.split(r"==?", term, maxsplit=1)
            terms.append(("==", key, value))
        elif term.startswith("!"):
            terms.append(("not", term[1:], None))
        else:
            terms.append(("has", term, None))
    return terms


def _selected(terms: list[tuple[str, str, str | None]], labels: dict[str, str]) -> bool:
    for operator, key, value in terms:
        if operator == "==" and labels.get(key) != value:
            return False
        if operator == "!=" and labels.get(key) == value:
            return False
        if operator == "not" and key in labels:
            return False
        if operator == "has" and key not in labels:
            return False
    return True


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _location(name: str) -> tuple | None:
    return next((row for row in LOCATIONS if row[1] == name), None)


def _server_type(name: str) -> tuple | None:
    return next((row for row in SERVER_TYPES if row[1] == name), None)


def _amount(net: Decimal) -> dict[str, str]:
    return {"net": f"{net:.4f}", "gross": f"{net * VAT:.4f}"}


def _location_json(row: tuple) -> dict[str, Any]:
    location_id, name, city, country, latitude, longitude, zone = row
    return {
        "id": location_id,
        "name": name,
        "description": f"{city} DC Park 1",
        "city": city,
        "country": country,
        "latitude": latitude,
        "longitude": longitude,
        "network_zone": zone,
    }


def _datacenter_json(location: dict[str, Any]) -> dict[str, Any]:
    type_ids = [row[0] for row in SERVER_TYPES]
    return {
        "id": location["id"],
        "name": f"{location['name']}-dc1",
        "description": f"{location['city']} DC 1",
        "location": location,
        "server_types": {
            "available": type_ids,
            "available_for_migration": type_ids,
            "supported": type_ids,
        },
    }


def _image_json(name: str, created: str) -> dict[str, Any]:
    flavor, _, version = name.partition("-")
    return {
        "id": 161547269,
        "name": name,
        "description": name,
        "type": "system",
        "status": "available",
        "architecture": "x86",
        "created": created,
        "created_from": None,
        "bound_to": None,
        "deleted": None,
        "deprecated": None,
        "disk_size": 5,
        "image_size": None,
        "labels": {},
        "os_flavor": flavor if flavor in OS_FLAVORS else "unknown",
        "os_version": version or None,
        "protection": {"delete": False},
        "rapid_deploy": True,
    }


def _public_net_json(record: dict[str, Any]) -> dict[str, Any]:
    n = record["id"]
    ipv4 = f"198.18.{n // 256 % 256}.{n % 256}"
    return {
        "firewalls": [],
        "floating_ips": [],
        "ipv4": {
            "id": n,
            "ip": ipv4,
            "blocked": False,
            "dns_ptr": f"static.{ipv4}.clients.your-server.de",
        }
        if record["ipv4"]
        else None,
        "ipv6": {"id": n, "ip": f"2001:db8:{n:x}::/64", "blocked": False, "dns_ptr": []}
        if record["ipv6"]
        else None,
    }

"""A stateful fake of Authentik's core API (v3): users, groups, memberships, recovery links.

Held honest by Authentik's own generated client (the pinned `authentik-client` package): every
request body is validated with its request model (UserRequest, PatchedUserRequest, GroupRequest,
UserAccountRequest, UserRecoveryLinkRequest), unknown body fields and query parameters are
refused, and every answer is validated with its response model (User, PaginatedUserList, Group,
PaginatedGroupList, Link) before it leaves. A request the spec does not allow is answered 400
and recorded in `violations`; an answer the spec does not allow is recorded there too (a bug of
the fake). Tests assert `violations == []`.

Like Authentik it refuses a taken username or group name (400 naming the field), answers 403
without the right Bearer token, and a new recovery link replaces the user's previous one.
Lost answers and transient or permanent failures at a chosen request come from
FakeVendor.inject().
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from authentik_client.models import (
    Group,
    GroupRequest,
    Link,
    PaginatedGroupList,
    PaginatedUserList,
    PatchedUserRequest,
    User,
    UserAccountRequest,
    UserRecoveryLinkRequest,
    UserRequest,
)
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from fakes import FakeVendor

TOKEN = "authentik-test-token"  # noqa: S105  (the fake's own token, not a credential)
URL = "https://authentik.test"
API = "/api/v3"
USERS_LIST_PARAMS = frozenset(
    {"attributes", "email", "username", "name", "is_active", "page", "page_size",
     "include_groups", "include_roles", "path", "path_startswith", "search", "ordering"}
)  # fmt: skip
GROUPS_LIST_PARAMS = frozenset(
    {"name", "page", "page_size", "include_users", "include_children", "include_parents",
     "search", "ordering", "attributes"}
)  # fmt: skip
Handler = Callable[[httpx.Request, re.Match[str]], httpx.Response]


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Refused(Exception):
    """A request the published API does not allow: answered 400 with the field errors."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(json.dumps(errors))
        self.errors = errors


class FakeAuthentik(FakeVendor):
    """Authentik's users and groups in memory, behind the token given."""

    def __init__(self, *, token: str = TOKEN, base_url: str = URL) -> None:
        super().__init__()
        self.token = token
        self.base_url = base_url
        self.users: dict[int, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}  # uuid -> record (with "users": pks)
        self.recovery_links: dict[int, str] = {}  # the user's one valid link
        self.violations: list[str] = []
        self._user_ids = itertools.count(7)
        self._group_ids = itertools.count(1001)
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/core/users/"), self._list_users),
            ("POST", re.compile(r"/core/users/"), self._create_user),
            ("GET", re.compile(r"/core/users/(\d+)/"), self._get_user),
            ("PATCH", re.compile(r"/core/users/(\d+)/"), self._patch_user),
            ("POST", re.compile(r"/core/users/(\d+)/recovery/"), self._recovery),
            ("GET", re.compile(r"/core/groups/"), self._list_groups),
            ("POST", re.compile(r"/core/groups/"), self._create_group),
            ("POST", re.compile(r"/core/groups/([0-9a-f-]{36})/add_user/"), self._add_user),
            ("POST", re.compile(r"/core/groups/([0-9a-f-]{36})/remove_user/"), self._remove_user),
        ]

    # --- set-up and inspection for tests ------------------------------------------------------
    def add_user(self, username: str, *, email: str = "", **fields: Any) -> dict[str, Any]:
        """A user that exists already (made by staff, or by an earlier run)."""
        return self._store_user({"username": username, "name": username, "email": email, **fields})

    def user_group_names(self, pk: int) -> set[str]:
        return {group["name"] for group in self.groups.values() if pk in group["users"]}

    def writes(self) -> list[httpx.Request]:
        """Requests that could change something (POST, PATCH)."""
        return [r for r in self.requests if r.method in {"POST", "PATCH", "PUT", "DELETE"}]

    # --- dispatch -----------------------------------------------------------------------------
    def route(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _detail(403, "Authentication credentials were not provided.")
        path = request.url.path.removeprefix(API)
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match and method == request.method:
                try:
                    return handler(request, match)
                except Refused as refused:
                    self.violations.append(f"{request.method} {path}: {refused}")
                    return httpx.Response(400, json=refused.errors)
        return _detail(404, "Not found.")

    # --- users --------------------------------------------------------------------------------
    def _list_users(self, request: httpx.Request, _: re.Match[str]) -> httpx.Response:
        params = _params(request, USERS_LIST_PARAMS)
        found = [user for user in self.users.values() if _user_selected(user, params)]
        found.sort(key=lambda user: user["username"])
        body = _page(found, params, self._user_answer)
        return self._answer(200, body, PaginatedUserList)

    def _create_user(self, request: httpx.Request, _: re.Match[str]) -> httpx.Response:
        body = _body(request, UserRequest)
        if any(user["username"] == body["username"] for user in self.users.values()):
            return httpx.Response(400, json={"username": ["This field must be unique."]})
        record = self._store_user(body)
        return self._answer(201, self._user_answer(record), User)

    def _get_user(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        record = self.users.get(int(match[1]))
        if record is None:
            return _detail(404, "No User matches the given query.")
        return self._answer(200, self._user_answer(record), User)

    def _patch_user(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        record = self.users.get(int(match[1]))
        if record is None:
            return _detail(404, "No User matches the given query.")
        body = _body(request, PatchedUserRequest)
        record.update({key: value for key, value in body.items() if key != "groups"})
        record["last_updated"] = _now()
        return self._answer(200, self._user_answer(record), User)

    def _recovery(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        pk = int(match[1])
        if pk not in self.users:
            return _detail(404, "No User matches the given query.")
        if request.content:
            _body(request, UserRecoveryLinkRequest)
        token = secrets.token_urlsafe(24)
        link = f"{self.base_url}/if/flow/default-recovery-flow/?flow_token={token}"
        self.recovery_links[pk] = link  # Authentik keeps one recovery token per user
        return self._answer(200, {"link": link}, Link)

    def _store_user(self, fields: dict[str, Any]) -> dict[str, Any]:
        pk = next(self._user_ids)
        record = {
            "pk": pk,
            "username": fields["username"],
            "name": fields.get("name", ""),
            "is_active": fields.get("is_active", True),
            "last_login": None,
            "date_joined": _now(),
            "email": fields.get("email", ""),
            "attributes": dict(fields.get("attributes") or {}),
            "uid": secrets.token_hex(32),
            "path": fields.get("path", "users"),
            "type": fields.get("type", "internal"),
            "uuid": str(uuid.uuid4()),
            "password_change_date": _now(),
            "last_updated": _now(),
        }
        self.users[pk] = record
        return record

    def _user_answer(self, record: dict[str, Any]) -> dict[str, Any]:
        groups = [g for g in self.groups.values() if record["pk"] in g["users"]]
        return {
            **record,
            "is_superuser": any(g["is_superuser"] for g in groups),
            "groups": [g["pk"] for g in groups],
            "groups_obj": [_partial_group(g) for g in groups],
            "roles": [],
            "roles_obj": [],
            "avatar": "data:image/svg+xml;base64,",
        }

    # --- groups -------------------------------------------------------------------------------
    def _list_groups(self, request: httpx.Request, _: re.Match[str]) -> httpx.Response:
        params = _params(request, GROUPS_LIST_PARAMS)
        found = [g for g in self.groups.values() if params.get("name") in (None, g["name"])]
        found.sort(key=lambda group: group["name"])
        body = _page(found, params, self._group_answer)
        return self._answer(200, body, PaginatedGroupList)

    def _create_group(self, request: httpx.Request, _: re.Match[str]) -> httpx.Response:
        body = _body(request, GroupRequest)
        if any(group["name"] == body["name"] for group in self.groups.values()):
            return httpx.Response(400, json={"name": ["group with this name already exists."]})
        record = {
            "pk": str(uuid.uuid4()),
            "num_pk": next(self._group_ids),
            "name": body["name"],
            "is_superuser": bool(body.get("is_superuser", False)),
            "attributes": dict(body.get("attributes") or {}),
            "users": set(body.get("users") or []),
        }
        self.groups[record["pk"]] = record
        return self._answer(201, self._group_answer(record), Group)

    def _add_user(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        return self._membership(request, match[1], add=True)

    def _remove_user(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        return self._membership(request, match[1], add=False)

    def _membership(self, request: httpx.Request, group_pk: str, *, add: bool) -> httpx.Response:
        body = _body(request, UserAccountRequest)
        group = self.groups.get(group_pk)
        if group is None or body["pk"] not in self.users:
            return _detail(404, "Not found.")
        if add:
            group["users"].add(body["pk"])
        else:
            group["users"].discard(body["pk"])
        return httpx.Response(204)

    def _group_answer(self, record: dict[str, Any]) -> dict[str, Any]:
        return {
            **{key: value for key, value in record.items() if key != "users"},
            "parents": [],
            "parents_obj": [],
            "users": sorted(record["users"]),
            "users_obj": None,
            "roles": [],
            "roles_obj": [],
            "inherited_roles_obj": None,
            "children": [],
            "children_obj": None,
        }

    # --- the published shapes -----------------------------------------------------------------
    def _answer(self, status: int, body: dict[str, Any], model: type[BaseModel]) -> httpx.Response:
        """`body` checked against the response model before it leaves."""
        problem = _violation(body, model)
        if problem:
            self.violations.append(f"answer {model.__name__}: {problem}")
        return httpx.Response(status, json=body, headers={"X-authentik-id": uuid.uuid4().hex})


def _violation(body: Any, model: type[BaseModel]) -> str:
    """Why `body` is not a valid `model` ("" when it is): unknown keys, or pydantic's errors."""
    if not isinstance(body, dict):
        return "not an object"
    unknown = set(body) - set(model.model_fields)
    if unknown:
        return f"unknown fields {sorted(unknown)}"
    try:
        model.from_dict(body)  # type: ignore[attr-defined]
    except PydanticValidationError as error:
        return str(error)
    return ""


def _body(request: httpx.Request, model: type[BaseModel]) -> dict[str, Any]:
    """The request's JSON object, valid for `model` (else Refused, answered 400)."""
    try:
        body = json.loads(request.content or b"null")
    except ValueError:
        raise Refused({"non_field_errors": ["JSON parse error"]}) from None
    problem = _violation(body, model)
    if problem:
        raise Refused({"non_field_errors": [f"{model.__name__}: {problem}"[:2000]]})
    return body


def _params(request: httpx.Request, allowed: frozenset[str]) -> dict[str, str]:
    params = dict(request.url.params)
    unknown = set(params) - allowed
    if unknown:
        raise Refused({"non_field_errors": [f"unknown query parameters {sorted(unknown)}"]})
    for name in ("page", "page_size"):
        if name in params and not params[name].isdigit():
            raise Refused({name: ["A valid integer is required."]})
    if "attributes" in params:
        try:
            attributes = json.loads(params["attributes"])
        except ValueError:
            raise Refused({"attributes": ["filter: failed to parse JSON"]}) from None
        if not isinstance(attributes, dict):
            raise Refused({"attributes": ["filter: value must be key:value mapping"]})
    return params


def _user_selected(user: dict[str, Any], params: dict[str, str]) -> bool:
    # Authentik filters `email` and `username` exactly, attributes by JSON equality per key.
    for name in ("email", "username"):
        if name in params and user[name] != params[name]:
            return False
    wanted = json.loads(params.get("attributes", "{}"))
    return all(user["attributes"].get(key) == value for key, value in wanted.items())


def _page(
    items: list[dict[str, Any]], params: dict[str, str], shape: Callable[[dict], dict]
) -> dict[str, Any]:
    page, size = int(params.get("page", 1)), int(params.get("page_size", 20))
    total_pages = max(-(-len(items) // size), 1)
    chunk = items[(page - 1) * size : page * size]
    start = (page - 1) * size + 1 if chunk else 0
    return {
        "pagination": {
            "next": page + 1 if page < total_pages else 0,
            "previous": page - 1 if page > 1 else 0,
            "count": len(items),
            "current": page,
            "total_pages": total_pages,
            "start_index": start,
            "end_index": start + len(chunk) - 1 if chunk else 0,
        },
        "results": [shape(item) for item in chunk],
        "autocomplete": {},
    }


def _partial_group(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "pk": record["pk"],
        "num_pk": record["num_pk"],
        "name": record["name"],
        "is_superuser": record["is_superuser"],
        "attributes": record["attributes"],
    }


def _detail(status: int, detail: str) -> httpx.Response:
    return httpx.Response(status, json={"detail": detail})

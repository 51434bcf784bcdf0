"""Authentik (API v3) users and groups, on the one request pipeline (VendorClient).

Only Authentik's own parts live here: its error table (`authentik_error`), its parsers and its
endpoints (`/core/users/`, `/core/groups/`, `.../add_user/`, `.../remove_user/`,
`/core/users/{id}/recovery/`). Sending, logging, timeouts and paging are VendorClient's.

The API token travels only in the Authorization header; a recovery link (a password-setting
secret) is returned to the caller and never logged or put in an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

import httpx

from integrations.budget import RateBudget
from integrations.errors import IdentityError
from integrations.http import VendorClient, int_header, request_where
from integrations.identity.base import IdentityGroup, IdentityProvider, IdentityUser, NewUser

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v3"
PAGE_SIZE = 100
# How long a set-your-password link stays valid (Authentik's timedelta string).
RECOVERY_LINK_LIFETIME = "days=7"


class PartialGroupJson(TypedDict):
    pk: str
    name: str


class UserJson(TypedDict):
    """A user as /core/users/ answers it (the fields this adapter reads)."""

    pk: int
    username: str
    name: str
    is_active: NotRequired[bool]
    email: NotRequired[str]
    attributes: NotRequired[dict[str, Any]]
    groups: NotRequired[list[str]]
    groups_obj: NotRequired[list[PartialGroupJson] | None]


class GroupJson(TypedDict):
    pk: str
    name: str
    attributes: NotRequired[dict[str, Any]]


def authentik_error(response: httpx.Response) -> IdentityError:
    """The IdentityError an error answer means (pure: reads only `response`).

    429 and 5xx are transient (Retry-After honoured); 400 is a validation error, permanent,
    its `code` the first field named (`username`, `name`, ...); 401/403/404 are permanent.
    """
    status = response.status_code
    body = _json(response)
    field, detail = _first_error(body)
    code = field or f"http_{status}"
    where = request_where(response)
    message = f"Authentik answered {status}{where}: {detail or response.reason_phrase}"
    if status == 429:
        retry = int_header(response, "Retry-After")
        return IdentityError(message, transient=True, code=code, retry_after=retry)
    return IdentityError(message[:500], transient=status >= 500, code=code)


def _first_error(body: Any) -> tuple[str, str]:
    """(field, message) of a DRF error body: {"detail": ...} or {"field": ["message"]}."""
    if not isinstance(body, dict):
        return "", ""
    if isinstance(body.get("detail"), str):
        return str(body.get("code") or ""), body["detail"][:200]
    for key, value in body.items():
        first = value[0] if isinstance(value, list) and value else value
        return str(key), str(first)[:200]
    return "", ""


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _user(item: UserJson) -> IdentityUser:
    groups = item.get("groups_obj") or []
    return IdentityUser(
        pk=int(item["pk"]),
        username=item["username"],
        email=item.get("email") or "",
        name=item.get("name") or "",
        is_active=bool(item.get("is_active", True)),
        attributes=dict(item.get("attributes") or {}),
        group_pks=frozenset(str(pk) for pk in item.get("groups") or []),
        group_names=frozenset(group["name"] for group in groups),
    )


def _group(item: GroupJson) -> IdentityGroup:
    return IdentityGroup(
        pk=str(item["pk"]), name=item["name"], attributes=dict(item.get("attributes") or {})
    )


def _next_page(body: Any, page: Any) -> int | None:
    """Authentik names the next page number, 0 on the last page."""
    following = (body.get("pagination") or {}).get("next") or 0
    return int(following) or None


class AuthentikApi(VendorClient):
    """The request pipeline with Authentik's error table."""

    vendor = "Authentik"
    error_class = IdentityError
    correlation_header = "X-authentik-id"

    def classify(self, response: httpx.Response) -> IdentityError:
        return authentik_error(response)


class AuthentikIdentity(IdentityProvider):
    """Users and groups of one Authentik, through an API token allowed to manage them."""

    kind = "authentik"

    def __init__(self, *, base_url: str, token: str, budget: RateBudget | None = None) -> None:
        root = base_url.rstrip("/")
        if not root.endswith(API_PREFIX):
            root += API_PREFIX
        self.api = AuthentikApi(base_url=root, token=token, budget=budget)

    def __repr__(self) -> str:  # never the token
        return f"AuthentikIdentity(base_url={self.api.base_url!r})"

    # --- users -----------------------------------------------------------------------------
    def find_users(
        self,
        *,
        attributes: Mapping[str, Any] | None = None,
        email: str | None = None,
        username: str | None = None,
    ) -> list[IdentityUser]:
        """Every user the filters select, every page; filtered again here, so a server that
        ignored a filter cannot make us adopt a stranger."""
        params: dict[str, Any] = {"page_size": PAGE_SIZE, "include_groups": "true"}
        if attributes:
            params["attributes"] = json.dumps(dict(attributes), sort_keys=True)
        if email is not None:
            params["email"] = email
        if username is not None:
            params["username"] = username
        items = self.api.pages("/core/users/", items=_results, next_page=_next_page, params=params)
        users = [self._parsed(_user, item, "a user listing") for item in items]
        return [user for user in users if _selected(user, attributes, email, username)]

    def get_user(self, pk: int) -> IdentityUser | None:
        """The user `pk` (None on a 404)."""
        body = self.api.request("GET", f"/core/users/{int(pk)}/", missing_ok=True)
        return None if body is None else self._parsed(_user, body, "a user")

    def create_user(self, user: NewUser) -> IdentityUser:
        """POST /core/users/: an internal user without a password, active."""
        body = {
            "username": user.username,
            "name": user.name,
            "email": user.email,
            "is_active": True,
            "path": user.path,
            "type": "internal",
            "attributes": dict(user.attributes),
        }
        return self._parsed(_user, self.api.request("POST", "/core/users/", json=body), "a user")

    def update_user(
        self,
        pk: int,
        *,
        is_active: bool | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> IdentityUser:
        """PATCH /core/users/{pk}/ with only what is given."""
        body: dict[str, Any] = {}
        if is_active is not None:
            body["is_active"] = is_active
        if attributes is not None:
            body["attributes"] = dict(attributes)
        answer = self.api.request("PATCH", f"/core/users/{int(pk)}/", json=body)
        return self._parsed(_user, answer, "a user")

    def recovery_link(self, user_pk: int) -> str:
        """POST /core/users/{pk}/recovery/: a set-your-password link (a secret)."""
        answer = self.api.request(
            "POST",
            f"/core/users/{int(user_pk)}/recovery/",
            json={"token_duration": RECOVERY_LINK_LIFETIME},
        )
        link = answer.get("link") if isinstance(answer, dict) else None
        if not isinstance(link, str) or not link.startswith(("https://", "http://")):
            raise self.api.invalid("the recovery link")
        return link

    # --- groups ----------------------------------------------------------------------------
    def find_group(self, name: str) -> IdentityGroup | None:
        """The group named exactly `name` (GET /core/groups/?name=), or None."""
        params = {"name": name, "page_size": PAGE_SIZE, "include_users": "false"}
        items = self.api.pages("/core/groups/", items=_results, next_page=_next_page, params=params)
        groups = [self._parsed(_group, item, "a group listing") for item in items]
        return next((group for group in groups if group.name == name), None)

    def create_group(self, name: str, attributes: Mapping[str, Any]) -> IdentityGroup:
        """POST /core/groups/ (never a superuser group)."""
        body = {"name": name, "is_superuser": False, "attributes": dict(attributes)}
        return self._parsed(_group, self.api.request("POST", "/core/groups/", json=body), "group")

    def add_to_group(self, group_pk: str, user_pk: int) -> None:
        """POST /core/groups/{pk}/add_user/ (Authentik answers 204 for a member too)."""
        self.api.request("POST", f"/core/groups/{group_pk}/add_user/", json={"pk": int(user_pk)})

    def remove_from_group(self, group_pk: str, user_pk: int) -> None:
        """POST /core/groups/{pk}/remove_user/; a group or user already gone is no error."""
        path = f"/core/groups/{group_pk}/remove_user/"
        self.api.request("POST", path, json={"pk": int(user_pk)}, missing_ok=True)

    # --- helpers ---------------------------------------------------------------------------
    def _parsed(self, parse: Any, item: Any, what: str) -> Any:
        try:
            return parse(item)
        except (KeyError, TypeError, ValueError):
            raise self.api.invalid(what) from None


def _results(body: Any) -> list[Any]:
    results = body.get("results") if isinstance(body, dict) else None
    return results if isinstance(results, list) else []


def _selected(
    user: IdentityUser,
    attributes: Mapping[str, Any] | None,
    email: str | None,
    username: str | None,
) -> bool:
    if email is not None and user.email.lower() != email.lower():
        return False
    if username is not None and user.username != username:
        return False
    return all(user.attributes.get(key) == value for key, value in (attributes or {}).items())

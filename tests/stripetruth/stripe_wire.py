"""Every request stripe-python sends, checked against Stripe's own published OpenAPI document.

Requests to a path the Prism mock serves (../shared/specs/stripe/stripe.mock.json: checkout
sessions, customers, events, subscriptions, ...) always go to Prism, which refuses what the spec
does not allow; a test may answer such a request with its own body (`answer`), which is then
held to the spec's response schema. Paths the mock does not serve (prices, products) are checked
here against the full spec of the same commit (spec3.2022-04-12.json.gz): query and form
parameters decoded from Stripe's bracket encoding and validated with the operation's schemas,
unknown parameters refused as Stripe refuses them; their answers must be given by the test and
are held to the response schema too.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import stripe
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SPECS = Path(__file__).resolve().parents[3] / "shared" / "specs" / "stripe"
SPEC_URI = "urn:stripe-spec"


@dataclass
class WireCall:
    """One request stripe-python sent, and what came back."""

    method: str
    path: str
    query: list[tuple[str, str]]
    form: list[tuple[str, str]]
    mode: str  # "test" or "live": which secret key signed the request
    idempotency_key: str
    status: int
    problems: list[str] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        """The value of a query or form parameter (the last one given)."""
        found = [value for key, value in self.query + self.form if key == name]
        return found[-1] if found else None

    def params(self, prefix: str) -> list[str]:
        """The values of every query or form parameter whose name starts with `prefix`."""
        return [value for key, value in self.query + self.form if key.startswith(prefix)]


class StripeWire:
    """The recorded calls and the answers a test has queued, by "METHOD /path"."""

    def __init__(self) -> None:
        self.calls: list[WireCall] = []
        self.answers: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        # Answers to every request to a route, after the queued ones.
        self.standing: dict[str, dict[str, Any]] = {}
        # Routes answered by a function of the call (a small stateful stand-in for Stripe).
        self.responders: dict[str, Callable[[WireCall], tuple[int, dict[str, Any]]]] = {}

    def answer(self, route: str, body: dict[str, Any], status: int = 200) -> None:
        """Answer the next request to `route` ("GET /v1/events") with `body`."""
        self.answers[route].append((status, body))

    def to(self, method: str, path: str) -> list[WireCall]:
        """The calls made to `path` (a prefix ending in "/" matches the paths below it)."""
        return [
            call
            for call in self.calls
            if call.method == method
            and (call.path == path or (path.endswith("/") and call.path.startswith(path)))
        ]

    def problems(self) -> list[str]:
        """Every refusal or spec violation seen, as "METHOD /path: problem"."""
        return [f"{c.method} {c.path}: {p}" for c in self.calls for p in c.problems]


def stripe_fixture(resource: str, **changes: Any) -> dict[str, Any]:
    """Stripe's own example of `resource` (fixtures3.json, the spec's commit) with `changes`."""
    resources = json.loads((SPECS / "fixtures3.json").read_text())["resources"]
    return {**resources[resource], **changes}


def event_list(*events: dict[str, Any], has_more: bool = False) -> dict[str, Any]:
    """A page of `GET /v1/events` (newest first, as Stripe lists)."""
    return {"object": "list", "data": list(events), "has_more": has_more, "url": "/v1/events"}


# --- the spec ------------------------------------------------------------------------------------


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's `nullable` said the JSON-Schema way (in place)."""
    if isinstance(node, list):
        for item in node:
            _nullable(item)
    elif isinstance(node, dict):
        for value in node.values():
            _nullable(value)
        if node.pop("nullable", False):
            if "type" in node:
                node["type"] = [node["type"], "null"]
            if "anyOf" in node:
                node["anyOf"].append({"type": "null"})
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
    return node


@cache
def stripe_spec() -> dict[str, Any]:
    with gzip.open(SPECS / "spec3.2022-04-12.json.gz") as source:
        return _nullable(json.load(source))


@cache
def mock_paths() -> tuple[re.Pattern[str], ...]:
    served = json.loads((SPECS / "stripe.mock.json").read_text())["paths"]
    return tuple(_path_pattern(path) for path in served)


def _path_pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def _operation(method: str, path: str) -> dict[str, Any] | None:
    for template, operations in stripe_spec()["paths"].items():
        if _path_pattern(template).match(path):
            return operations.get(method.lower())
    return None


def _form_types() -> jsonschema.TypeChecker:
    """Form values are text: "12" is an integer and "true" a boolean when the schema says so."""
    base = jsonschema.Draft7Validator.TYPE_CHECKER

    def integer(checker: Any, value: Any) -> bool:
        return base.is_type(value, "integer") or (isinstance(value, str) and value.isdigit())

    def boolean(checker: Any, value: Any) -> bool:
        return base.is_type(value, "boolean") or value in ("true", "false")

    def number(checker: Any, value: Any) -> bool:
        return base.is_type(value, "number") or bool(
            isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value)
        )

    return base.redefine_many({"integer": integer, "boolean": boolean, "number": number})


def _validator(schema: dict[str, Any], *, form: bool) -> jsonschema.Validator:
    registry = Registry().with_resource(SPEC_URI, Resource(stripe_spec(), DRAFT7))
    cls = jsonschema.Draft7Validator
    if form:
        cls = jsonschema.validators.extend(cls, type_checker=_form_types())
    return cls(schema, registry=registry)


def _anchored(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema whose `#/components/...` references resolve inside the spec."""
    text = json.dumps(schema).replace('"$ref": "#/', f'"$ref": "{SPEC_URI}#/')
    return json.loads(text)


def decode_brackets(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`a[b][0]=x`, `types[]=y`) as nested objects and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = [key.split("[", 1)[0], *re.findall(r"\[([^\]]*)\]", key)]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part or str(len(node)), {})
        node[parts[-1] or str(len(node))] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {key: _listify(value) for key, value in node.items()}
    if node and all(key.isdigit() for key in node):
        return [node[key] for key in sorted(node, key=int)]
    return node


def request_problems(
    method: str, path: str, query: list[tuple[str, str]], form: list[tuple[str, str]]
) -> list[str]:
    """What Stripe's spec says is wrong with a request (empty when it conforms)."""
    operation = _operation(method, path)
    if operation is None:
        return [f"no operation {method} {path} in Stripe's spec"]
    problems = []
    given = decode_brackets(query)
    declared = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}
    for name, value in given.items():
        if name not in declared:
            problems.append(f"unknown query parameter {name!r}")
            continue
        schema = _anchored(declared[name]["schema"])
        for error in _validator(schema, form=True).iter_errors(value):
            problems.append(f"query {name}: {error.message}")
    if form:
        content = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]
        validator = _validator(_anchored(content["schema"]), form=True)
        for error in validator.iter_errors(decode_brackets(form)):
            problems.append(f"form {'/'.join(map(str, error.path))}: {error.message}")
    return problems


def response_problems(method: str, path: str, status: int, body: dict[str, Any]) -> list[str]:
    """What Stripe's spec says is wrong with an answer we made up for a request."""
    operation = _operation(method, path) or {}
    response = operation.get("responses", {}).get(str(status)) or operation.get(
        "responses", {}
    ).get("default")
    if response is None:
        return [f"{method} {path} has no {status} answer in Stripe's spec"]
    schema = _anchored(response["content"]["application/json"]["schema"])
    return [
        f"answer: {error.message[:300]}"
        for error in _validator(schema, form=False).iter_errors(body)
    ]


# --- the patch -----------------------------------------------------------------------------------


def _served_by_mock(path: str) -> bool:
    return any(pattern.match(path) for pattern in mock_paths())


def _answer(wire: StripeWire, call: WireCall) -> tuple[int, dict[str, Any]] | None:
    """The test's answer to `call`: queued, standing, or from a responder (None: none)."""
    route = f"{call.method} {call.path}"
    if wire.answers.get(route):
        return wire.answers[route].pop(0)
    if route in wire.standing:
        return 200, wire.standing[route]
    if route in wire.responders:
        return wire.responders[route](call)
    return None


def _refusal(call: WireCall) -> tuple[str, int, dict[str, str]]:
    call.status = 400
    error = {"error": {"type": "invalid_request_error", "message": "; ".join(call.problems)}}
    return json.dumps(error), 400, {"Request-Id": "req_wire"}


def wire_install(monkeypatch: Any, wire: StripeWire) -> None:
    """Route stripe-python's requests through `wire` (to Prism, or checked here)."""
    original = stripe.RequestsClient.request

    def recording(self: Any, method: str, url: str, headers: Any, post_data: Any = None) -> Any:
        parts = urlsplit(url)
        text = post_data.decode() if isinstance(post_data, bytes) else post_data or ""
        call = WireCall(
            method=method.upper(),
            path=parts.path,
            query=parse_qsl(parts.query, keep_blank_values=True),
            form=parse_qsl(text, keep_blank_values=True),
            mode="live" if "_live_" in (headers or {}).get("Authorization", "") else "test",
            idempotency_key=(headers or {}).get("Idempotency-Key", ""),
            status=0,
        )
        wire.calls.append(call)
        if _served_by_mock(call.path):  # Prism checks every request, answered here or not
            content, status, reply_headers = original(self, method, url, headers, post_data)
            violations = (reply_headers or {}).get("sl-violations", "")
            if violations:
                call.problems.append(f"Prism: {violations}")
            if status >= 400:
                call.problems.append(f"Prism refused the request: {content[:300]!r}")
            answer = None if status >= 400 else _answer(wire, call)
            if answer is None:
                call.status, call.body = status, json.loads(content or b"{}")
                return content, status, reply_headers
        else:
            call.problems += request_problems(call.method, call.path, call.query, call.form)
            answer = None if call.problems else _answer(wire, call)
            if answer is None:
                call.problems.append(f"no answer to {call.method} {call.path}")
                return _refusal(call)
        call.status, call.body = answer
        call.problems += response_problems(call.method, call.path, *answer)
        return json.dumps(call.body), call.status, {"Request-Id": "req_wire"}

    monkeypatch.setattr(stripe.RequestsClient, "request", recording)

"""Validate an httpx request/response pair against a vendor's own OpenAPI document.

The trimmed specs live beside the project in ../shared/specs/trimmed/ (public data, never copied
into the repository); tests that need them skip when ../shared/ is absent (a user's clone),
and fail instead under CI=true, where a skip would hide that nothing was checked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.loopback import listening

SHARED = Path(__file__).resolve().parents[2] / "shared"
TRIMMED = SHARED / "specs" / "trimmed"
# The spec's own server URL path, which our base URL carries too (Prism ignores it).
SERVER_PREFIX = {"hetzner": "/v1", "cloudflare": "/client/v4", "digitalocean": ""}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


# Under CI=true ../shared/ is always there: a test that needs it runs (and fails without it).
needs_shared = pytest.mark.skipif(
    not TRIMMED.is_dir() and not _in_ci(),
    reason="../shared/ is absent (a user's clone): no vendor specs",
)


@cache
def vendor_openapi(vendor: str) -> OpenAPI:
    spec = json.loads((TRIMMED / f"{vendor}.json").read_text())
    # Validate paths as the vendor documents them, whatever host the test talked to.
    spec["servers"] = [{"url": f"http://vendor.test{SERVER_PREFIX[vendor]}"}]
    if vendor == "cloudflare":  # the batch endpoint is newer than the stored spec
        from tests.dns.cloudflare_batch_spec import spec_with_batch

        spec = spec_with_batch(spec)
    return OpenAPI.from_dict(spec)


def _fixed(node: Any) -> Any:
    """The trimmed specs' fix-ups, applied to what is grafted from a vendor's full spec:
    `4xx` response keys spelled `4XX`, `{allOf: [X], nullable: true}` as `anyOf[X, null]`."""
    if isinstance(node, list):
        return [_fixed(item) for item in node]
    if not isinstance(node, dict):
        return node
    fixed = {
        {"4xx": "4XX", "5xx": "5XX"}.get(key, key): _fixed(value) for key, value in node.items()
    }
    if fixed.get("nullable") is True and "allOf" in fixed:
        rest = {k: v for k, v in fixed.items() if k not in ("allOf", "nullable")}
        return {**rest, "anyOf": [{"allOf": fixed["allOf"]}, {"enum": [None]}]}
    return fixed


def _refs(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {node["$ref"].rsplit("/", 1)[1]} if isinstance(node.get("$ref"), str) else set()
    return found.union(*(_refs(value) for value in node.values()))


@cache
def hetzner_openapi_with(*paths: str) -> OpenAPI:
    """The trimmed Hetzner spec plus `paths` (which it lacks) from Hetzner's full spec
    (../shared/specs/hetzner/hcloud.json), with the components they need."""
    spec = json.loads((TRIMMED / "hetzner.json").read_text())
    full = json.loads((SHARED / "specs" / "hetzner" / "hcloud.json").read_text())
    schemas = spec["components"]["schemas"]
    for graft in paths:
        # The path's own `servers` names Hetzner's host; the tests validate against vendor.test.
        operations = {key: value for key, value in full["paths"][graft].items() if key != "servers"}
        spec["paths"][graft] = _fixed(operations)
        pending = _refs(spec["paths"][graft])
        while pending:
            name = pending.pop()
            if name not in schemas:
                schemas[name] = _fixed(full["components"]["schemas"][name])
                pending |= _refs(schemas[name])
    spec["servers"] = [{"url": f"http://vendor.test{SERVER_PREFIX['hetzner']}"}]
    return OpenAPI.from_dict(spec)


def hetzner_spec_with(monkeypatch: pytest.MonkeyPatch, *paths: str) -> None:
    """Validate this test's Hetzner exchanges against the spec with `paths` grafted in
    (nothing in a user's clone without ../shared/: spec_checked only answers there)."""
    if not (TRIMMED / "hetzner.json").is_file():
        return
    original = vendor_openapi
    grafted = hetzner_openapi_with(*paths)
    monkeypatch.setattr(
        sys.modules[__name__],
        "vendor_openapi",
        lambda vendor: grafted if vendor == "hetzner" else original(vendor),
    )


class _Request:
    def __init__(self, request: httpx.Request, prefix: str) -> None:
        path = request.url.path
        if prefix and not path.startswith(prefix):
            path = prefix + path
        self.host_url = "http://vendor.test"
        self.path = path
        self.full_url_pattern = self.host_url + path
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("content-type", "application/json").split(";")[0]
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self.data = response.content
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "application/json").split(";")[0]
        self.headers = Headers(list(response.headers.items()))


def spec_errors(
    vendor: str, request: httpx.Request, response: httpx.Response | None = None
) -> list[str]:
    """Every way the exchange breaks the vendor's spec (empty when it conforms)."""
    openapi = vendor_openapi(vendor)
    wrapped = _Request(request, SERVER_PREFIX[vendor])
    errors = [_describe(error) for error in openapi.iter_request_errors(wrapped)]
    if response is not None:
        errors += [
            _describe(error) for error in openapi.iter_response_errors(wrapped, _Response(response))
        ]
    return errors


def _describe(error: Any) -> str:
    causes = getattr(error, "schema_errors", None) or [error.__cause__] if error.__cause__ else []
    detail = "; ".join(str(getattr(cause, "message", cause))[:300] for cause in causes if cause)
    return f"{type(error).__name__}: {error}" + (f" ({detail})" if detail else "")


def assert_conforms(
    vendor: str, request: httpx.Request, response: httpx.Response | None = None
) -> None:
    errors = spec_errors(vendor, request, response)
    assert not errors, f"{request.method} {request.url.path}: " + " | ".join(errors)


def spec_checked(
    vendor: str, handle: Callable[[httpx.Request], httpx.Response]
) -> httpx.MockTransport:
    """A transport answering with `handle` that asserts each request the adapter sends, and
    each answer the fake gives, conform to the vendor's spec. Without ../shared/ (a user's
    clone) it only answers."""
    validate = (TRIMMED / f"{vendor}.json").is_file()

    def checked(request: httpx.Request) -> httpx.Response:
        request.read()
        if validate:
            assert_conforms(vendor, request)  # before a dropped answer can hide it
        response = handle(request)
        if validate:
            response.read()
            assert_conforms(vendor, request, response)
        return response

    return httpx.MockTransport(checked)


MOCKS_SH = SHARED / "mocks" / "mocks.sh"
STOP_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class StartedMock:
    """A mock server process this test session started: its PID file and its command line,
    which must still match before the process is stopped (PIDs are reused)."""

    pidfile: Path
    pid: int
    cmdline: bytes


# The mock servers `mock_server` started in this session; `mocks_stop_started` stops them.
_STARTED: list[StartedMock] = []


def _listening(url: str) -> bool:
    parsed = httpx.URL(url)
    return listening(parsed.host, parsed.port)


def unavailable(reason: str) -> NoReturn:
    """Skip, saying why; under CI=true fail instead: there the mocks must run, and a skipped
    contract test would hide that nothing was checked."""
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: the contract tests must run)", pytrace=False)
    pytest.skip(reason)


def mock_server(url: str) -> str:
    """The base URL of one of ../shared/mocks/' servers (Prism, or the SMTP sink's API),
    starting them with `mocks.sh start` when nothing listens there. The ones this starts are
    stopped at the end of the session (`mocks_stop_started`). When that cannot work it skips,
    saying why, or fails under CI=true."""
    if not MOCKS_SH.is_file():
        unavailable("../shared/ is absent (a user's clone): no vendor mock servers")
    if _listening(url):
        return url
    before = _recorded_mocks()
    try:
        started = subprocess.run(
            ["bash", str(MOCKS_SH), "start"], capture_output=True, text=True, timeout=240
        )
        detail = (started.stdout + started.stderr)[-300:]
    except (OSError, subprocess.TimeoutExpired) as error:
        detail = str(error)
    finally:
        _remember_started(before)
    if not _listening(url):
        unavailable(f"the mock on {url} does not answer after `mocks.sh start`: {detail}")
    return url


def _mocks_dir() -> Path:
    """Where mocks.sh records its PIDs (it reads MOCKS_DIR from the environment too)."""
    return Path(os.environ.get("MOCKS_DIR") or "/tmp/wopr-mocks")


def _cmdline(pid: int) -> bytes:
    """The process's command line; empty once it has exited (or is a zombie)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _recorded_mocks() -> dict[Path, StartedMock]:
    """Every live process recorded in a PID file of mocks.sh, by PID file."""
    found = {}
    for pidfile in sorted(_mocks_dir().glob("*.pid")):
        text = pidfile.read_text().strip() if pidfile.is_file() else ""
        cmdline = _cmdline(int(text)) if text.isdigit() else b""
        if cmdline:
            found[pidfile] = StartedMock(pidfile=pidfile, pid=int(text), cmdline=cmdline)
    return found


def _remember_started(before: dict[Path, StartedMock]) -> None:
    """Record the mock processes that appeared since `before` as started by this session."""
    for pidfile, mock in _recorded_mocks().items():
        if before.get(pidfile) != mock and mock not in _STARTED:
            _STARTED.append(mock)


def mocks_stop_started() -> list[int]:
    """Stop the mock servers this session started (TERM, a bounded wait, then KILL) and remove
    their PID files; the ones that were running before (.ci/run's, a developer's) are left
    alone. Returns the PIDs stopped."""
    stopped = []
    while _STARTED:
        mock = _STARTED.pop()
        if _cmdline(mock.pid) != mock.cmdline:
            continue  # it exited, or its PID now belongs to another process
        _stop(mock.pid)
        stopped.append(mock.pid)
        if mock.pidfile.is_file() and mock.pidfile.read_text().strip() == str(mock.pid):
            mock.pidfile.unlink(missing_ok=True)
    return stopped


def _stop(pid: int) -> None:
    """TERM, up to STOP_TIMEOUT_SECONDS for it to exit, then KILL."""
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while _cmdline(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _cmdline(pid):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Recording(httpx.BaseTransport):
    """Real HTTP to a Prism mock, remembering every exchange."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.exchanges.append((request, response))
        return response

    def close(self) -> None:
        self.inner.close()


def prism_accepted(recording: Recording) -> list[str]:
    """The calls made, each asserted 2xx and free of Prism's spec-violation warnings."""
    calls = []
    for request, response in recording.exchanges:
        call = f"{request.method} {request.url.path}"
        assert response.is_success, f"{call}: {response.status_code} {response.text[:500]}"
        assert "sl-violations" not in response.headers, f"{call}: {response.headers}"
        calls.append(call)
    return calls

"""The one request pipeline to vendor APIs (`VendorClient`), and the seam for tests.

Every request goes: budget check → auth header → send → transport errors mapped → error answer
classified (vendor hook) → rate budget recorded (vendor hook) → logged (method, path, status,
the vendor's correlation id; never the token) → JSON decoded.

An adapter for a new vendor subclasses `VendorClient` and fills in its hooks:

    class AcmeApi(VendorClient):
        vendor = "Acme"                      # in log lines and error messages
        error_class = AcmeError              # an integrations.errors.ExternalError subclass
        correlation_header = "X-Request-Id"  # logged with every answer

        def classify(self, response: httpx.Response) -> AcmeError:   # the error table
            return AcmeError(..., transient=response.status_code >= 500)

        def budget_reading(self, response, error) -> BudgetReading | None:  # rate headers
            return BudgetReading(remaining=int_header(response, "X-RateLimit-Remaining"))

    api = AcmeApi(base_url="https://api.acme.test", token=token, budget=budget)
    body = api.request("GET", "/things/1")                  # decoded JSON ({} when empty)
    gone = api.request("GET", "/things/2", missing_ok=True)  # None on a 404
    for thing in api.pages("/things", items=lambda b: b["things"], next_page=next_of):
        ...                                                  # every page, no page cap

Connections: one keep-alive `httpx.Client` per (base URL, credentials) per process, built lazily
and shared by threads, all over one SSL context. Tests route a base URL elsewhere with
`transport_install(url, transport)` / `with transport_for(url, httpx.MockTransport(handler)):`;
installing or removing drops the cached clients of that URL, so it works at any time.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from integrations.budget import BudgetReading, NoBudget, RateBudget
from integrations.errors import ExternalError

logger = logging.getLogger(__name__)

USER_AGENT = "wopr-control-plane/0.1"
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)

_lock = threading.Lock()
_transports: dict[str, httpx.BaseTransport] = {}
_clients: dict[tuple[str, tuple[tuple[str, str], ...]], httpx.Client] = {}
_ssl_context: ssl.SSLContext | None = None


def _key(base_url: str) -> str:
    return base_url.rstrip("/")


# --- the test seam -----------------------------------------------------------------------
def transport_install(base_url: str, transport: httpx.BaseTransport) -> None:
    """Send every request for `base_url` to `transport` (tests and demos)."""
    with _lock:
        _transports[_key(base_url)] = transport
        _drop_clients(_key(base_url))


def transport_remove(base_url: str) -> None:
    """Send requests for `base_url` to the network again."""
    with _lock:
        _transports.pop(_key(base_url), None)
        _drop_clients(_key(base_url))


@contextmanager
def transport_for(base_url: str, transport: httpx.BaseTransport) -> Iterator[None]:
    """`with transport_for(url, MockTransport(handler)):` routes `url` there for the block."""
    transport_install(base_url, transport)
    try:
        yield
    finally:
        transport_remove(base_url)


def _drop_clients(base_key: str) -> None:
    # Called with _lock held. A MockTransport's close() is a no-op; a real pool just closes.
    for key in [key for key in _clients if key[0] == base_key]:
        _clients.pop(key).close()


def _forget_clients() -> None:
    """In a forked child: the parent's connections are not ours to reuse (nor to close)."""
    global _lock
    _lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_forget_clients)


# --- clients -----------------------------------------------------------------------------
def shared_ssl_context() -> ssl.SSLContext:
    """The process's one SSL context (building one costs milliseconds of CPU per client)."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


def http_client(
    *, base_url: str, headers: dict[str, str] | None = None, timeout: httpx.Timeout | None = None
) -> httpx.Client:
    """A new client for one vendor API: a timeout on every request, no redirects followed.
    The caller closes it; adapters use `shared_client` (through VendorClient) instead."""
    return httpx.Client(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        timeout=timeout or DEFAULT_TIMEOUT,
        follow_redirects=False,
        transport=_transports.get(_key(base_url)),
        verify=shared_ssl_context(),
    )


def shared_client(
    *, base_url: str, headers: dict[str, str], timeout: httpx.Timeout | None = None
) -> httpx.Client:
    """The process's keep-alive client for `base_url` with these (credential) headers."""
    key = (_key(base_url), tuple(sorted(headers.items())))
    client = _clients.get(key)
    if client is not None:
        return client
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = http_client(base_url=base_url, headers=headers, timeout=timeout)
            _clients[key] = client
    return client


def request_where(response: httpx.Response) -> str:
    """Where an answer came from, as ' to METHOD /path', for error messages (empty for an
    answer built without a request, as tests do)."""
    try:
        request = response.request
    except RuntimeError:
        return ""
    return f" to {request.method} {request.url.path}"


def int_header(response: httpx.Response, name: str) -> int | None:
    """An integer header (rate limits), or None when absent or not a number."""
    value = response.headers.get(name, "").strip()
    try:
        return int(value)
    except ValueError:
        return None


# --- the pipeline ------------------------------------------------------------------------
class VendorClient:
    """One vendor API: the request pipeline with per-vendor hooks (see the module docstring)."""

    vendor = "vendor"
    error_class: type[ExternalError] = ExternalError
    correlation_header = "X-Request-Id"
    timeout: httpx.Timeout = DEFAULT_TIMEOUT

    def __init__(self, *, base_url: str, token: str, budget: RateBudget | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.budget: RateBudget = budget or NoBudget()

    def __repr__(self) -> str:  # never the token
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    # --- hooks -----------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        """The credential headers (a bearer token unless the vendor says otherwise)."""
        return {"Authorization": f"Bearer {self._token}"}

    def classify(self, response: httpx.Response) -> ExternalError:
        """The error an error answer means (the vendor's error table): override."""
        status = response.status_code
        return self.error_class(
            f"{self.vendor} HTTP {status}",
            transient=status == 429 or status >= 500,
            code=f"http_{status}",
        )

    def budget_reading(
        self, response: httpx.Response, error: ExternalError | None
    ) -> BudgetReading | None:
        """What the answer says about the rate budget, None when nothing: override."""
        return None

    def decode(self, response: httpx.Response, method: str, path: str) -> Any:
        """The answer's JSON ({} for an empty body); a body that is not JSON is transient."""
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise self.invalid(f"{method} {path}") from None

    def invalid(self, what: str) -> ExternalError:
        """The error for an answer in a shape we cannot read (a proxy's page, a vendor bug)."""
        return self.error_class(
            f"{self.vendor} answered {what} in an unexpected shape",
            transient=True,
            code="bad_response",
        )

    # --- requests --------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """One request through the whole pipeline; the decoded JSON body. Raises the
        classified error; a 404 returns None instead when `missing_ok`."""
        response, error = self.exchange(method, path, params=params, json=json, headers=headers)
        if error is not None:
            if missing_ok and response.status_code == 404:
                return None
            raise error
        return self.decode(response, method, path)

    def exchange(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[httpx.Response, ExternalError | None]:
        """Budget check, send, classify, record, log: the answer and its error (not raised)."""
        self.budget.check()
        response = self._send(method, path, **kwargs)
        error = None if response.is_success else self.classify(response)
        reading = self.budget_reading(response, error)
        if reading is not None:
            self.budget.record(
                remaining=reading.remaining,
                limit=reading.limit,
                reset_at=reading.reset_at,
                retry_after=reading.retry_after,
            )
        self._log(method, path, response, error)
        return response, error

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        client = shared_client(
            base_url=self.base_url,
            headers={**self.auth_headers(), "Accept": "application/json"},
            timeout=self.timeout,
        )
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        try:
            return client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise self.error_class(
                f"{self.vendor} {method} {path}: timed out", transient=True, code="timeout"
            ) from exc
        except httpx.TransportError as exc:
            raise self.error_class(
                f"{self.vendor} {method} {path}: no answer ({type(exc).__name__})",
                transient=True,
                code="network",
            ) from exc

    def _log(
        self, method: str, path: str, response: httpx.Response, error: ExternalError | None
    ) -> None:
        logger.log(
            logging.DEBUG if error is None else logging.INFO,
            "%s %s %s -> %s (request %s=%s)",
            self.vendor,
            method,
            path,
            response.status_code,
            self.correlation_header,
            response.headers.get(self.correlation_header, "-"),
        )

    # --- listings --------------------------------------------------------------------------
    def pages(
        self,
        path: str,
        *,
        items: Callable[[Any], list[Any]],
        next_page: Callable[[Any, Any], Any | None],
        params: dict[str, Any] | None = None,
        first: Any = 1,
        page_param: str = "page",
    ) -> Iterator[Any]:
        """Every item of a listing, page after page until the vendor names no next page.

        `items(body)` picks a page's items; `next_page(body, page)` names the next page (a
        number or a cursor) or None. There is no page cap: the only guard is against a vendor
        loop, which raises: a page named twice, or two empty pages in a row that still name a
        next one (one empty page can be honest: a filter applied after paging)."""
        page, seen, empty_before = first, set(), False
        while page is not None:
            if page in seen:
                raise self._paging_loop(path, f"page {page!r} named twice")
            seen.add(page)
            body = self.request("GET", path, params={**(params or {}), page_param: page})
            found = items(body) or []
            yield from found
            following = next_page(body, page)
            if following is not None and not found and empty_before:
                raise self._paging_loop(path, f"empty pages up to {page!r} name a next page")
            page, empty_before = following, not found

    def _paging_loop(self, path: str, what: str) -> ExternalError:
        return self.error_class(
            f"{self.vendor} GET {path}: {what}", transient=True, code="paging_loop"
        )

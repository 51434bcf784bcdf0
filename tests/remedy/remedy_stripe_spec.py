"""Stripe's published spec for the calls of billing.remedy, served by Prism for these tests.

The shared Stripe mock (../shared/specs/stripe/stripe.mock.json, port 4012) keeps 16 paths, not
`/v1/invoices` or `/v1/refunds`. This builds the same file plus those two paths from the same
source (`spec3.2022-04-12.json.gz`) with the same fix-ups that README lists: expandable fields
collapsed to their id form, form bodies flattened (no deepObject `encoding`, bracketed keys
allowed), 200 examples from `fixtures3.json`, `default` error answers copied as 400. Prism then
serves it on a free port of our own (shared/ is read-only and its mocks are everyone's).

`GET /v1/invoice_payments` (how API 2026-08-26.dahlia names an invoice's payment) is younger
than the 2022 spec: tests answer it themselves, held to stripe-python 15.6.2's own generated
types (`InvoicePayment`, `InvoicePaymentListParams`) instead.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[3] / "shared"
STRIPE_SPECS = SHARED / "specs" / "stripe"
MOCKS_SH = SHARED / "mocks" / "mocks.sh"
ADDED = {"/v1/invoices": ("get",), "/v1/refunds": ("post",)}
FIXTURE_OF = {"/v1/invoices": "invoice", "/v1/refunds": "refund"}


def collapse_expandables(node: Any) -> Any:
    """Fix-up 1: `anyOf [id, object]` of an expandable field becomes the id's schema."""
    if isinstance(node, list):
        return [collapse_expandables(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "x-expansionResources" in node and "anyOf" in node:
        kept = {key: node[key] for key in ("description", "nullable") if key in node}
        return {**node["anyOf"][0], **kept}
    return {key: collapse_expandables(value) for key, value in node.items()}


def refs(node: Any) -> set[str]:
    """Every component name `node` refers to."""
    if isinstance(node, list):
        return set().union(*(refs(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {node["$ref"].rsplit("/", 1)[1]} if "$ref" in node else set()
    return found.union(*(refs(value) for value in node.values()))


def form_flat(operation: dict[str, Any]) -> None:
    """Fix-up 3: no deepObject encoding; `name[...]` keys of nested fields allowed."""
    form = operation.get("requestBody", {}).get("content", {})
    form = form.get("application/x-www-form-urlencoded")
    if not form or "encoding" not in form:
        return
    nested = sorted(form.pop("encoding"))
    pattern = "^(" + "|".join(re.escape(name) for name in nested) + ")\\["
    form["schema"]["patternProperties"] = {pattern: {}}


def with_examples(path: str, operation: dict[str, Any], fixtures: dict[str, Any]) -> None:
    """Fix-ups 4 and 5: a 200 example from Stripe's fixtures; errors answered as 400."""
    example = fixtures[FIXTURE_OF[path]]
    if path == "/v1/invoices":
        example = {"object": "list", "data": [example], "has_more": False, "url": path}
    ok = operation["responses"]["200"]["content"]["application/json"]
    ok["example"] = example
    operation["responses"]["400"] = operation["responses"]["default"]


def spec_build(target: Path) -> Path:
    """Write the served Stripe spec plus ADDED to `target`."""
    with gzip.open(STRIPE_SPECS / "spec3.2022-04-12.json.gz") as packed:
        source = collapse_expandables(json.load(packed))
    spec = json.loads((STRIPE_SPECS / "stripe.mock.json").read_text())
    fixtures = json.loads((STRIPE_SPECS / "fixtures3.json").read_text())["resources"]
    for path, methods in ADDED.items():
        spec["paths"][path] = {}
        for method in methods:
            operation = source["paths"][path][method]
            form_flat(operation)
            with_examples(path, operation, fixtures)
            spec["paths"][path][method] = operation
    components = spec["components"]["schemas"]
    wanted = refs({path: spec["paths"][path] for path in ADDED})
    while wanted - set(components):
        for name in wanted - set(components):
            components[name] = source["components"]["schemas"][name]
        wanted = refs(components)
    target.write_text(json.dumps(spec))
    return target


def prism_js() -> Path | None:
    """Prism as ../shared/mocks/mocks.sh installs it (`mocks.sh setup` when missing)."""
    cache = os.environ.get("MOCKS_CACHE") or str(Path.home() / ".cache" / "wopr-mocks")
    script = Path(cache) / "node_modules" / "@stoplight" / "prism-cli" / "dist" / "index.js"
    if not script.is_file() and MOCKS_SH.is_file():
        subprocess.run(["bash", str(MOCKS_SH), "setup"], capture_output=True, timeout=240)
    return script if script.is_file() else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def prism_start(spec: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Prism serving `spec` on a free loopback port; (process, base URL) once it answers."""
    script, port = prism_js(), free_port()
    if script is None:
        raise RuntimeError("Prism is not installed and `mocks.sh setup` could not install it")
    command = ["node", str(script), "mock", "-h", "127.0.0.1", "-p", str(port), "--errors"]
    process = subprocess.Popen(
        [*command, str(spec)], stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 90
    while not listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"Prism did not start: {log.read_text()[-500:]}")
        time.sleep(0.2)
    return process, f"http://127.0.0.1:{port}"

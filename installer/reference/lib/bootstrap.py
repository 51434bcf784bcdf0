#!/usr/bin/env python3
"""The reference installer's JSON and templating helper (python3 is on every Debian cloud image).

    bootstrap.py get BOOTSTRAP KEY            a value (a list: one item a line; dotted keys)
    bootstrap.py body STATUS [KEY=VALUE...]   a callback body; index and total are numbers
    bootstrap.py page BOOTSTRAP OUT INSTALLED_AT   the status page (HTML, every value escaped)
    bootstrap.py caddyfile BOOTSTRAP OUT SITE_ROOT  the Caddyfile (automatic TLS with WOPR_ACME=1)

Standard library only. Values from bootstrap.json are never trusted as markup or Caddyfile
syntax: the page escapes them, and the Caddyfile takes only a host name that is one.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
NUMBERS = {"index", "total"}


def load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def lookup(data: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            raise SystemExit(f"bootstrap.json has no {key!r}")
        data = data[part]
    return data


def get(path: str, key: str) -> None:
    value = lookup(load(path), key)
    if isinstance(value, list):
        print("\n".join(str(item) for item in value))
    elif isinstance(value, bool):
        print("true" if value else "false")
    else:
        print(value)


def body(status: str, *pairs: str) -> None:
    payload: dict[str, Any] = {"status": status}
    for pair in pairs:
        key, _, value = pair.partition("=")
        payload[key] = int(value) if key in NUMBERS else value
    print(json.dumps(payload))


def page(path: str, out: str, installed_at: str) -> None:
    data = load(path)
    esc = lambda value: html.escape(str(value))  # noqa: E731
    version = os.environ.get("WOPR_INSTALLER_VERSION", "")
    modules = "".join(f"<li>{esc(module)}</li>" for module in data.get("modules", []))
    Path(out).write_text(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(data['name'])} - WOPR Beacon</title></head><body>\n"
        f"<h1>Beacon {esc(data['name'])}</h1>\n"
        f'<p>Address: <span id="fqdn">{esc(data["fqdn"])}</span></p>\n'
        f'<p>Bundle: <span id="bundle">{esc(data["bundle"])}</span>'
        f" (tier {esc(data.get('tier', ''))})</p>\n"
        f'<h2>Modules</h2>\n<ul id="modules">{modules}</ul>\n'
        f'<p>Installed at <time id="installed-at">{esc(installed_at)}</time>'
        f" by the WOPR reference installer {esc(version)}.</p>\n"
        "</body></html>\n",
        encoding="utf-8",
    )


def caddyfile(path: str, out: str, site_root: str) -> None:
    fqdn = str(load(path)["fqdn"]).lower().rstrip(".")
    if not HOSTNAME.match(fqdn):
        raise SystemExit("bootstrap.json's fqdn is not a host name")
    if os.environ.get("WOPR_ACME") == "1":
        # Automatic HTTPS: Caddy gets a certificate for the name and redirects http to https.
        header, addresses = "", fqdn
    else:
        header, addresses = "{\n\tauto_https off\n}\n\n", f"http://{fqdn}, :80"
    Path(out).write_text(
        f"# Written by the WOPR reference installer.\n{header}{addresses} {{\n"
        f"\troot * {site_root}\n\tfile_server\n}}\n",
        encoding="utf-8",
    )


COMMANDS = {"get": get, "body": body, "page": page, "caddyfile": caddyfile}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        raise SystemExit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])

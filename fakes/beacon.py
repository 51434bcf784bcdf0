"""A fake Beacon's installer: what runs on a new server after cloud-init.

It reads /etc/wopr/bootstrap.json from the user data the control plane sent, waits a moment as
an installation would, then reports each stage of the install protocol (`booted`, `installing`
per module, `configuring_sso`, `complete`) to the callback URL with the per-job bearer token,
exactly as a real Beacon does. The fake vendors call it on every server they create when
asked to (`serve_fakecloud --beacons`, the scale-out test).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import httpx
import yaml

logger = logging.getLogger(__name__)


BOOTSTRAP_PATH = "/etc/wopr/bootstrap.json"


def bootstrap_from_user_data(user_data: str) -> dict | None:
    """The bootstrap.json written by the #cloud-config (None when there is none): the content
    of its `write_files` entry for /etc/wopr/bootstrap.json, read as cloud-init reads it.
    User data that is not such YAML falls back to the one JSON object in it (hand-made
    user data in tests)."""
    try:
        config = yaml.safe_load(user_data)
    except yaml.YAMLError:
        config = None
    if isinstance(config, dict):
        for entry in config.get("write_files") or []:
            if isinstance(entry, dict) and entry.get("path") == BOOTSTRAP_PATH:
                try:
                    return json.loads(entry.get("content") or "")
                except ValueError:
                    return None
    start, end = user_data.find("{"), user_data.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        return json.loads(user_data[start : end + 1])
    except ValueError:
        return None


def beacon_installer(delay: float = 1.0) -> Callable[[str], None]:
    """An `on_create(user_data)` hook that reports the install's stages after `delay` seconds."""

    def on_create(user_data: str) -> None:
        bootstrap = bootstrap_from_user_data(user_data)
        if bootstrap and bootstrap.get("callback_url") and bootstrap.get("callback_token"):
            timer = threading.Timer(delay, _report, args=(bootstrap,))
            timer.daemon = True
            timer.start()

    return on_create


def install_reports(bootstrap: dict) -> list[dict]:
    """The protocol's stages in order, as the reference installer reports them."""
    modules = list(bootstrap.get("modules") or [])
    return [
        {"status": "booted"},
        *(
            {"status": "installing", "module": module, "index": index, "total": len(modules)}
            for index, module in enumerate(modules, start=1)
        ),
        {"status": "configuring_sso"},
        {"status": "complete", "message": "fake Beacon installed"},
    ]


def _report(bootstrap: dict) -> None:
    """Post every stage in order (each retried a few times; a repeat is a harmless duplicate)."""
    for body in install_reports(bootstrap):
        _post(bootstrap, body)


def _post(bootstrap: dict, body: dict) -> None:
    for _attempt in range(5):
        try:
            response = httpx.post(
                bootstrap["callback_url"],
                json=body,
                headers={"Authorization": f"Bearer {bootstrap['callback_token']}"},
                timeout=10,
            )
        except httpx.HTTPError as error:
            logger.warning("fake Beacon %s: callback failed: %s", bootstrap.get("name"), error)
            continue
        if response.status_code < 500:
            return

"""A fake Beacon's installer: what runs on a new server after cloud-init.

It reads /etc/wopr/bootstrap.json from the user data the control plane sent, waits a moment as
an installation would, then reports `complete` to the callback URL with the per-job bearer
token, exactly as a real Beacon does. The fake vendors call it on every server they create when
asked to (`serve_fakecloud --beacons`, the scale-out test).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import httpx

logger = logging.getLogger(__name__)


def bootstrap_from_user_data(user_data: str) -> dict | None:
    """The bootstrap.json written by the #cloud-config (None when there is none)."""
    start, end = user_data.find("{"), user_data.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        return json.loads(user_data[start : end + 1])
    except ValueError:
        return None


def beacon_installer(delay: float = 1.0) -> Callable[[str], None]:
    """An `on_create(user_data)` hook that reports `complete` after `delay` seconds."""

    def on_create(user_data: str) -> None:
        bootstrap = bootstrap_from_user_data(user_data)
        if bootstrap and bootstrap.get("callback_url") and bootstrap.get("callback_token"):
            timer = threading.Timer(delay, _report, args=(bootstrap,))
            timer.daemon = True
            timer.start()

    return on_create


def _report(bootstrap: dict) -> None:
    for _attempt in range(5):
        try:
            response = httpx.post(
                bootstrap["callback_url"],
                json={"status": "complete", "message": "fake Beacon installed"},
                headers={"Authorization": f"Bearer {bootstrap['callback_token']}"},
                timeout=10,
            )
        except httpx.HTTPError as error:
            logger.warning("fake Beacon %s: callback failed: %s", bootstrap.get("name"), error)
            continue
        if response.status_code < 500:
            return

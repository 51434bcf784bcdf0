"""Secrets for the embedded first run, generated once and kept in `var/` (never committed).

Only used when DEBUG is on and the variable is unset; `wopr.checks` stops a non-DEBUG start that
lacks the real value, naming the variable.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import environ


def dev_secret(base_dir: Path, name: str, prefix: str) -> str:
    """Return the development secret `name`, creating it on first use.

    Several processes may start at once (gunicorn workers, the qcluster), so the file is created
    with O_EXCL and whoever loses the race reads the winner's value.
    """
    if not environ.Env().bool("DEBUG", default=True):  # read as settings.DEBUG is
        return ""
    path = base_dir / "var" / f"dev-{name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    value = prefix + secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_when_written(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def _read_when_written(path: Path) -> str:
    for _ in range(50):
        value = path.read_text().strip()
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty; delete it and start again")

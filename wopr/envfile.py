"""The developer's `.env`: read into the environment when present, under what is already set.

`make run` tells a developer to copy `.env.example` to `.env`; settings (so every manage.py
command, gunicorn and the worker alike) and gunicorn.conf.py read it through this function.
The environment always wins over the file. Tests never depend on a developer's `.env`: under
pytest (which sets PYTEST_VERSION, inherited by the processes tests start) nothing is read.
WOPR_ENV_FILE names another file (relative to the project), or, set empty, turns reading off;
naming a file explicitly reads it even under pytest.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ


def env_file_path(base_dir: Path) -> Path | None:
    """The file to read, or None."""
    explicit = os.environ.get("WOPR_ENV_FILE")
    if explicit is not None:
        return base_dir / explicit if explicit.strip() else None
    if "PYTEST_VERSION" in os.environ:
        return None
    return base_dir / ".env"


def env_file_read(base_dir: Path) -> Path | None:
    """Read the `.env` file into os.environ without replacing any variable already set;
    returns the file read (None when there was none)."""
    path = env_file_path(base_dir)
    if path is None or not path.is_file():
        return None
    environ.Env.read_env(path, overwrite=False)
    return path

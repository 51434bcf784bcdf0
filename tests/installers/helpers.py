"""Helpers of the installer tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_build_script() -> ModuleType:
    """scripts/build_installer.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "build_installer", ROOT / "scripts" / "build_installer.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_tarball(members: dict[str, tuple[bytes, int]]) -> bytes:
    """A gzip tar of name -> (bytes, mode), for uploads that are (not) installers."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        for name, (data, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def tool(name: str) -> str:
    """The tool's path; CI (CI=true) installs it, so there a missing tool fails the test."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI", "").strip().lower() in {"true", "1"}:
            pytest.fail(f"{name} is not installed; .ci/run installs it (check tools step)")
        pytest.skip(f"{name} is not installed (apt-get install {name}; CI installs it)")
    return path

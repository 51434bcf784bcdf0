"""scripts/build_installer.py: the same sources give the same bytes, with a right .sha256 and
an executable `install` at the tarball's root."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile

from tests.installers.helpers import ROOT


def build(out, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_installer.py"), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_two_builds_are_byte_identical_and_the_sha_file_is_right(tmp_path):
    first = build(tmp_path / "a", "--version", "1.2.3")
    build(tmp_path / "b", "--version", "1.2.3")

    name = "wopr-reference-installer-1.2.3.tar.gz"
    data = (tmp_path / "a" / name).read_bytes()
    assert data == (tmp_path / "b" / name).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert (tmp_path / "a" / f"{name}.sha256").read_text() == f"{digest}  {name}\n"
    assert first.strip().endswith(digest)
    assert data[4:8] == b"\0\0\0\0"  # gzip header mtime 0


def test_the_tarball_holds_an_executable_install_at_its_root_owned_by_root(tmp_path):
    build(tmp_path, "--version", "7.0.0")

    with tarfile.open(tmp_path / "wopr-reference-installer-7.0.0.tar.gz") as archive:
        members = {member.name: member for member in archive.getmembers()}
        version = archive.extractfile("VERSION").read()
    assert list(members) == sorted(members)
    assert members["install"].isfile() and members["install"].mode == 0o755
    assert members["lib/bootstrap.py"].mode == 0o755
    assert members["VERSION"].mode == 0o644
    assert version == b"7.0.0\n"
    assert {(m.uid, m.gid, m.mtime, m.uname) for m in members.values()} == {(0, 0, 0, "")}


def test_another_version_gives_another_tarball(tmp_path):
    build(tmp_path, "--version", "1.0.0")
    build(tmp_path, "--version", "1.0.1")

    one = (tmp_path / "wopr-reference-installer-1.0.0.tar.gz").read_bytes()
    other = (tmp_path / "wopr-reference-installer-1.0.1.tar.gz").read_bytes()
    assert one != other

"""Build the reference installer's tarball: deterministic, so the same sources give the same bytes.

    python scripts/build_installer.py [--version V] [--out dist/]

Writes `<out>/wopr-reference-installer-<V>.tar.gz` and its `.sha256` (sha256sum's format) and
prints the tarball's path and SHA-256. The files of installer/reference/ sit at the tarball's
root (`install` is the entry point), in name order, owned by 0:0, mtime 0, mode 0755 for what
is executable in the checkout and 0644 for the rest; the gzip header carries no name and no
time. `VERSION` holds the version given (default: installer/reference/VERSION). Standard
library only (`make installer`).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "installer" / "reference"
SKIPPED = {"__pycache__", ".pytest_cache"}


def source_files(source: Path) -> list[Path]:
    """The files to pack, in a stable order (bytes of their relative POSIX paths)."""
    files = [
        path
        for path in source.rglob("*")
        if path.is_file()
        and not SKIPPED.intersection(path.relative_to(source).parts)
        and path.suffix != ".pyc"
    ]
    return sorted(files, key=lambda path: path.relative_to(source).as_posix().encode())


def _member(name: str, data: bytes, executable: bool) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o755 if executable else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info, io.BytesIO(data)


def tarball_bytes(source: Path, version: str) -> bytes:
    """The gzip-compressed tar of `source`, its VERSION file replaced by `version`."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for path in source_files(source):
            name = path.relative_to(source).as_posix()
            data = f"{version}\n".encode() if name == "VERSION" else path.read_bytes()
            archive.addfile(*_member(name, data, bool(path.stat().st_mode & 0o100)))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def build(*, version: str, out: Path, source: Path = SOURCE) -> tuple[Path, str]:
    """Write the tarball and its .sha256 under `out`; (tarball path, SHA-256)."""
    data = tarball_bytes(source, version)
    digest = hashlib.sha256(data).hexdigest()
    out.mkdir(parents=True, exist_ok=True)
    tarball = out / f"wopr-reference-installer-{version}.tar.gz"
    tarball.write_bytes(data)
    Path(f"{tarball}.sha256").write_text(f"{digest}  {tarball.name}\n")
    return tarball, digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_version = (SOURCE / "VERSION").read_text().strip()
    parser.add_argument("--version", default=default_version, help="default: %(default)s")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="default: dist/")
    args = parser.parse_args()
    tarball, digest = build(version=args.version, out=args.out)
    print(f"{tarball} {digest}")


if __name__ == "__main__":
    main()

"""Fail when a function of the production code is longer than MAX_LINES (its docstring apart).

`make lint` runs it over the apps and the integrations layer; tests, benchmarks, fakes and
migrations are not production code. Error tables are data (dicts), so they are never counted.

    python scripts/check_function_size.py [--max 40] [paths...]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

MAX_LINES = 40
PACKAGES = (
    "wopr",
    "billing",
    "provisioning",
    "dns",
    "documents",
    "operations",
    "integrations",
    "installers",
    "backups",
)


def function_sizes(path: Path) -> Iterator[tuple[int, str, int]]:
    """(line, name, length without the docstring) of every function in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            length -= (first.end_lineno or first.lineno) - first.lineno + 1
        yield node.lineno, node.name, length


def production_files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        yield from (path for path in files if "migrations" not in path.parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=MAX_LINES)
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()
    roots = args.paths or [Path(name) for name in PACKAGES if Path(name).is_dir()]
    too_long = [
        f"{path}:{line}: {name} is {length} lines (at most {args.max})"
        for path in production_files(roots)
        for line, name, length in function_sizes(path)
        if length > args.max
    ]
    print("\n".join(too_long) or f"every function is at most {args.max} lines")
    return 1 if too_long else 0


if __name__ == "__main__":
    sys.exit(main())

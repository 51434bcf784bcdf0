"""The benchmark table: rows measured in one run, rendered as Markdown and written into
README.md between the markers, leaving everything outside them as it was."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"


@dataclass(frozen=True)
class Row:
    """One line of the table; `ratio` is measured against the baseline of the same run."""

    what: str
    measured: str
    baseline: str
    ratio: str
    target: str = ""


def table(rows: list[Row], *, heading: str) -> str:
    """The Markdown block: a heading line, then the table."""
    lines = [
        heading,
        "",
        "| what | measured | baseline (same run) | ratio | target |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r.what} | {r.measured} | {r.baseline} | {r.ratio} | {r.target} |" for r in rows]
    return "\n".join(lines)


def block_replace(text: str, block: str) -> str:
    """`text` with what lies between START and END replaced by `block`.

    Raises ValueError when the markers are missing or out of order, rather than appending a
    second table somewhere the reader would not look.
    """
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README needs {START} followed by {END}")
    return text[: start + len(START)] + "\n" + block.strip() + "\n" + text[end:]


def readme_write(path: Path, block: str) -> None:
    path.write_text(block_replace(path.read_text(), block))

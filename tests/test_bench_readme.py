"""The benchmark harness's README writer: it replaces the marked table and nothing else."""

from __future__ import annotations

import pytest

from benchmarks.readme import END, START, Row, block_replace, readme_write, table


def test_only_the_text_between_the_markers_is_replaced(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{START}\nold table\n{END}\nafter\n")

    readme_write(readme, "new table")

    assert readme.read_text() == f"# Title\n\nbefore\n{START}\nnew table\n{END}\nafter\n"


def test_a_second_run_replaces_the_first_runs_table_instead_of_adding_one():
    text = f"a\n{START}\n{END}\nb\n"

    once = block_replace(text, "first")
    twice = block_replace(once, "second")

    assert twice == f"a\n{START}\nsecond\n{END}\nb\n"
    assert "first" not in twice


@pytest.mark.parametrize("text", ["no markers", f"{END}\nreversed\n{START}", f"only {START}"])
def test_missing_or_reversed_markers_are_refused(text):
    with pytest.raises(ValueError, match="bench:start"):
        block_replace(text, "table")


def test_the_table_has_a_heading_and_one_line_per_row():
    rows = [Row("intake", "48/s", "550/s", "0.09", "≥ 0.5"), Row("memory", "142 MB", "", "", "")]

    lines = table(rows, heading="Last run: today").splitlines()

    assert lines[0] == "Last run: today"
    assert lines[-2] == "| intake | 48/s | 550/s | 0.09 | ≥ 0.5 |"
    assert lines[-1] == "| memory | 142 MB |  |  |  |"
    assert len(lines) == 6

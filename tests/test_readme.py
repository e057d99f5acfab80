"""The result tables of the README and the site's pages are generated from results/ (bench/readme_tables.py):
a drifted number fails."""

import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import readme_tables  # noqa: E402


@pytest.mark.parametrize("page", readme_tables.PAGES)
def test_the_generated_tables_are_those_of_results(page):
    stale = readme_tables.stale_tables((ROOT / page).read_text(), page)
    assert not stale, f"{page} differs from results/ in {stale}: run python bench/readme_tables.py"


def test_every_table_is_shown_on_some_page():
    assert readme_tables.missing_tables() == []


def test_the_readme_holds_the_which_clusterer_table():
    assert "<!-- results:which -->" in (ROOT / "README.md").read_text()


def test_a_hand_edited_number_is_caught():
    page = "docs/studies/density.md"
    text = readme_tables.render((ROOT / page).read_text(), page)
    start = text.index("<!-- results:density -->")
    line_start = text.index("| two_banana |", start)
    line_end = text.index("\n", line_start)
    cells = text[line_start:line_end].split("|")
    cells[3] = " 9.999 "  # the GMM's log-likelihood, typed by hand
    edited = text[:line_start] + "|".join(cells) + text[line_end:]
    assert readme_tables.stale_tables(edited, page) == ["density"]


def test_the_paired_table_has_one_row_per_set_and_flows_set_up_but_the_paper_s():
    table = readme_tables.paired_table()
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ") and "data set" not in line]
    keys = [(cells[0], cells[1]) for cells in rows]
    assert len(keys) == len(set(keys)) and not any("paper" in flows for _, flows in keys)
    toy = pd.read_csv(ROOT / "results" / "toy" / "significance.csv")
    assert {name for name, _ in keys} >= {f"| {name}" for name in toy["variant"]}

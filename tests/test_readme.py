"""The README's result tables are generated from results/ (bench/readme_tables.py): a drifted number fails."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import readme_tables  # noqa: E402


def test_the_readme_tables_are_those_of_results():
    stale = readme_tables.stale_tables((ROOT / "README.md").read_text())
    assert not stale, f"README.md differs from results/ in {stale}: run python bench/readme_tables.py"


def test_a_hand_edited_number_is_caught():
    readme = readme_tables.render((ROOT / "README.md").read_text())
    start = readme.index("<!-- results:density -->")
    line_start = readme.index("| two_banana |", start)
    line_end = readme.index("\n", line_start)
    cells = readme[line_start:line_end].split("|")
    cells[3] = " 9.999 "  # the GMM's log-likelihood, typed by hand
    edited = readme[:line_start] + "|".join(cells) + readme[line_end:]
    assert readme_tables.stale_tables(edited) == ["density"]

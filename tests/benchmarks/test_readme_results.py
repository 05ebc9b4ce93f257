"""The README's Results section is generated from the committed results files, and current."""

from __future__ import annotations

import pytest

from benchmarks import readme_results


def test_readme_results_match_the_committed_results_files() -> None:
    # Fails when a results file changed without `python -m benchmarks.readme_results`.
    assert readme_results.main(["--check"]) == 0


def test_block_is_replaced_between_the_markers_only() -> None:
    text = f"head\n{readme_results.BEGIN}\nold\n{readme_results.END}\ntail\n"
    new = readme_results.replace_block(text, "new\n")
    assert new == f"head\n{readme_results.BEGIN}\nnew\n{readme_results.END}\ntail\n"


def test_missing_markers_are_an_error() -> None:
    with pytest.raises(ValueError, match="results:begin"):
        readme_results.replace_block("no markers here", "x\n")

"""The notebooks' markdown and docs/workshop.md agree with the committed reference run (docs/reference/summary-cpu.json).

A measured number in the prose carries a `<!-- ref: KEY -->` marker (nbkit/workshop/summary.py); after a new quiet
cpu `make report`, `python -m nbkit.workshop.summary --update docs/reference/summary-cpu.json` rewrites them all.
"""

import json

import pytest

from nbkit.workshop.summary import (
    ROOT,
    check_prose,
    check_seed_blocks,
    markdown_of,
    pooled_report,
    prose_files,
    unmarked_numbers,
)

REFERENCE = ROOT / "docs" / "reference" / "summary-cpu.json"
FILES = prose_files()
# numbers that are not measurements of the reference run: confidence levels and the papers' own results
ALLOWED = [
    "95% CI",
    "95% interval",
    "bootstrap 95%",
    "20% more",  # STaR's step schedule
    "STaR 72.5%",  # STaR's CommonsenseQA results
    "60.0% for GPT-J",
    "30x larger",
    "86.7% with",
    "69.7% without",
    "as little as 1%",  # Razin et al.'s warm-start share
    "paper's 1%",
    "under 10% of the budget",  # the budget paper's cold start
    "at least 50%",  # STaR's cpu targets (#22), levels the claims test, not measurements
    "at least 20%",
    "at least 90%",
]


def test_the_reference_is_a_cpu_summary_of_every_notebook():
    ref = json.loads(REFERENCE.read_text())
    assert ref["profile"] == "cpu"
    assert sorted(ref["notebooks"]) == [p.name[:2] for p in FILES.values() if p.suffix == ".ipynb"]
    assert all(nb["minutes"] > 0 for nb in ref["notebooks"].values())


@pytest.mark.parametrize("name", FILES)
def test_marked_numbers_agree_with_the_reference_run(name):
    problems = check_prose(markdown_of(FILES[name]), json.loads(REFERENCE.read_text()))
    assert not problems, (
        f"{name} disagrees with {REFERENCE.name}: {problems}; "
        f"fix with `python -m nbkit.workshop.summary --update {REFERENCE.relative_to(ROOT)}`"
    )


@pytest.mark.parametrize("name", FILES)
def test_no_hand_typed_measurement_without_a_marker(name):
    found = unmarked_numbers(markdown_of(FILES[name]), ALLOWED)
    assert not found, (
        f"{name}: {found} look measured; mark each with <!-- ref: KEY --> (a value its notebook records), "
        "point at the cell that prints it, or put dated measurements of other runs between "
        "<!-- history: WHERE --> and <!-- /history -->"
    )


def test_the_guide_has_the_generated_time_table_and_each_notebook_records_its_summary():
    assert "<!-- summary: time table -->" in FILES["workshop.md"].read_text()
    for path in FILES.values():
        if path.suffix == ".ipynb":
            code = [
                "".join(c["source"])
                for c in json.loads(path.read_text())["cells"]
                if c["cell_type"] == "code"
            ]
            if "room.submit(part)" in code[-1]:  # sending the record to the room comes after it
                code.pop()
            assert f'summary.record(\n    "{path.name[:2]}"' in code[-1], path.name


def test_a_seeds_block_is_checked_against_its_committed_files():
    """A pasted `nbkit room pool` view passes only as that command prints it for the committed seed summaries."""
    pattern = "docs/reference/seeds-cpu/02-*.json"
    report = pooled_report(pattern)
    assert report.startswith("02 · cpu · ") and "5 laptops, seeds 0, 1, 2, 3, 4" in report
    line = next(x.strip() for x in report.splitlines() if x.strip().startswith("pooled "))

    def block(body, files=pattern):
        return f"<!-- seeds: {files} -->\n```\n{body}\n```\n<!-- /seeds -->"

    assert check_seed_blocks(block(line)) == []
    changed = line.replace("pooled +", "pooled +1", 1)
    assert check_seed_blocks(block(changed)) == [
        f"seeds block {pattern}: {changed!r} is not what `nbkit room pool {pattern}` prints"
    ]
    assert check_seed_blocks(block(line, "docs/reference/none-*.json")) == [
        "seeds block: docs/reference/none-*.json names no file"
    ]
    assert (
        "holds anything but"
        in check_seed_blocks(f"<!-- seeds: {pattern} -->\nsaid 0.9 %\n<!-- /seeds -->")[0]
    )
    assert (
        unmarked_numbers(block("took 12.6 min")) == []
    )  # the block's numbers are checked line by line instead

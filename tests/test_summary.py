"""nbkit.workshop.summary: a notebook's part, the report's merge, and prose checked and rewritten against a summary."""

import json
from dataclasses import dataclass

import nbformat
import numpy as np

from nbkit.claims import Claim
from nbkit.workshop import summary
from nbkit.workshop.report import run_all
from nbkit.workshop.summary import check_prose, claim_row, shown_like, unmarked_numbers, update_prose

SUMMARY = {
    "profile": "cpu",
    "machine": {
        "cpu": "AMD EPYC",
        "cores": 2,
        "threads": 2,
        "dtype": "float32",
        "load_start": [1.1],
        "load_end": [1.7],
    },
    "total": {"minutes": 42.1},
    "notebooks": {
        "01": {"minutes": 16.04, "values": {"acc_iter1": [1.0, 0.75, 0.5212, 0.29], "kept": 190}},
        "02": {"minutes": 12.6, "values": {"gain": 0.4137, "gain_lo": -0.004}},
    },
}


def test_a_claim_keeps_its_row_and_a_text_claim_the_verdict_it_names():
    row = claim_row(Claim("x rises", 0.5, 0.25, 0.75, 40, n_needed=None))
    assert row["verdict"] == "AGREES" and row["effect"] == 0.5 and row["ci_lo"] == 0.25 and row["n"] == 40
    assert claim_row("group: AGREES (exact, on every prompt): 2 zero-std prompts")["verdict"] == "AGREES"
    assert claim_row("NOT CHECKED: no probe was logged")["verdict"] == "NOT CHECKED"
    assert claim_row("claim_small_sft_rescues: not checked: the grid needs f = 0")["verdict"] == "NOT CHECKED"
    assert claim_row("something else") == {"claim": "something else", "verdict": None}


@dataclass
class _Config:
    profile: str = "smoke"
    seed: int = 7


def test_record_writes_a_part_under_the_report_and_nothing_by_hand(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(summary.PART_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    part = summary.record("02", claims=["AGREES (exact)"], values={"gain": np.float32(0.5)}, config=_Config())
    assert list(tmp_path.iterdir()) == [] and "not written" in capsys.readouterr().out
    assert part["seed"] == 7 and part["profile"] == "smoke" and len(part["config_hash"]) == 6
    assert part["config_hash"] != summary.config_hash(_Config(seed=8))

    monkeypatch.setenv(summary.PART_DIR_ENV, str(tmp_path / "parts"))
    summary.record("02", values={"gain": np.float64(0.5), "miss": float("nan")}, curves={"c": np.arange(3)})
    written = json.loads((tmp_path / "parts" / "02.json").read_text())
    assert written["values"] == {"gain": 0.5, "miss": None} and written["curves"] == {"c": [0, 1, 2]}
    assert written["machine"]["dtype"] in {"float32", "bfloat16"} and written["machine"]["cores"] >= 1


def test_merge_adds_minutes_load_and_versions_and_keeps_a_notebook_that_recorded_nothing(tmp_path):
    (tmp_path / "00.json").write_text(
        json.dumps({"notebook": "00", "machine": {"cpu": "X"}, "values": {"a": 1}})
    )
    merged = summary.merge(tmp_path, {"00": 0.5, "01": 2.25}, "cpu", (1.0, 0.5, 0.2), (2.0, 1.0, 0.5), ["01"])
    assert merged["notebooks"]["00"] == {"minutes": 0.5, "notebook": "00", "values": {"a": 1}}
    assert merged["notebooks"]["01"] == {"minutes": 2.25, "notebook": "01"}
    assert merged["total"] == {"minutes": 2.75} and merged["failed"] == ["01"]
    assert merged["machine"] == {"cpu": "X", "load_start": [1.0, 0.5, 0.2], "load_end": [2.0, 1.0, 0.5]}
    assert merged["versions"]["torch"] and merged["versions"]["python"]


def test_a_number_is_compared_at_the_precision_and_in_the_unit_the_prose_shows():
    assert shown_like(0.5212, "75", "%") == "52"
    assert shown_like(0.064, "+0.41") == "+0.06"
    assert shown_like(-0.004, "+0.00") == "-0.00"
    assert shown_like(16.04, "15.7") == "16.0"
    assert shown_like([1.0, 0.75, 0.5212, 0.29], "100/0/0/0", "%") == "100/75/52/29"
    assert shown_like([1.0, 0.5], "100 / 0", "%") == "100 / 50"


def test_check_prose_lists_what_disagrees_and_update_prose_fixes_it():
    text = (
        "took **15.7 min**<!-- ref: 01.minutes --> and 100/0/0/0%<!-- ref: 01.acc_iter1 -->;\n"
        "kept 190<!-- ref: 01.kept -->; gain +0.41<!-- ref: 02.gain --> [+0.01<!-- ref: 02.gain_lo -->];"
        " in all 42.1 min<!-- ref: total.minutes -->, load 1.1<!-- ref: machine.load_start.0 -->;"
        " 3 s<!-- ref: 02.nope -->"
    )
    problems = check_prose(text, SUMMARY)
    assert problems == [
        "01.minutes: the prose says 15.7 min, the summary 16.0",
        "01.acc_iter1: the prose says 100/0/0/0%, the summary 100/75/52/29",
        "02.gain_lo: the prose says +0.01, the summary -0.00",
        "02.nope: not in the summary (the prose says 3 s)",
    ]
    fixed = update_prose(text, SUMMARY)
    assert (
        "**16.0 min**<!-- ref: 01.minutes -->" in fixed and "100/75/52/29%<!-- ref: 01.acc_iter1 -->" in fixed
    )
    assert "[-0.00<!-- ref: 02.gain_lo -->]" in fixed and "3 s<!-- ref: 02.nope -->" in fixed
    assert check_prose(fixed, SUMMARY) == ["02.nope: not in the summary (the prose says 3 s)"]
    assert update_prose(fixed, SUMMARY) == fixed


def test_the_time_table_is_generated_between_its_markers():
    text = "## Times\n\n<!-- summary: time table -->\n| old | table |\n<!-- /summary -->\n\nAfter."
    assert check_prose(text, SUMMARY) == ["the time table differs from the summary's"]
    fixed = update_prose(text, SUMMARY)
    assert "| 01 STaR | **16.0** | <= 20 min |" in fixed and "| `make report` | **42.1** |" in fixed
    assert "AMD EPYC (2 cores, 2 threads, float32), load average 1.1 at the start and 1.7" in fixed
    assert fixed.endswith("<!-- /summary -->\n\nAfter.") and check_prose(fixed, SUMMARY) == []


def test_unmarked_numbers_finds_hand_typed_measurements_only():
    text = (
        "took 12.6 min<!-- ref: 02.minutes -->, then 3 s and 52%; `sleep 5 s` in code; 2.0x faster; 164 tok/s.\n\n"
        "<!-- history: benchmarks/x.py -->It was 9 minutes.<!-- /history --> A 95% CI; 3-hour day; 2 cores."
    )
    assert unmarked_numbers(text) == ["3 s", "52%", "2.0x", "164 tok/s", "95%"]
    assert unmarked_numbers(text, allowed=["95% CI"]) == ["3 s", "52%", "2.0x", "164 tok/s"]


def test_run_all_writes_summary_json_with_every_notebook(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    for nn, code in [
        ("00", "from nbkit.workshop import summary\nsummary.record('00', values={'x': 0.25})"),
        ("01", "raise ValueError('boom')"),
    ]:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(code)]
        nbformat.write(nb, folder / f"{nn}_probe.ipynb")
    assert run_all("smoke", tmp_path / "reports", folder=folder) == 1
    merged = json.loads((tmp_path / "reports" / "smoke" / "summary.json").read_text())
    assert sorted(merged["notebooks"]) == ["00", "01"] and merged["failed"] == ["01"]
    assert merged["notebooks"]["00"]["values"] == {"x": 0.25} and merged["notebooks"]["00"]["minutes"] > 0
    assert merged["profile"] == "smoke" and len(merged["machine"]["load_end"]) == 3

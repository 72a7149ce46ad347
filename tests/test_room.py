"""The room as a lab (nbkit.room, nbkit/serve/room.py): seeds from NBKIT_SEED, the replicate key, the pooling maths
against a direct computation, hostile submissions refused with nothing stored, the offline path, and a running room
that takes 8 laptops over HTTP and 30 at once."""

import copy
import json
import math
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from nbkit.config import ConfigError, parse_cli, seed_from
from nbkit.experiments.budget.config import PROFILES, BudgetConfig
from nbkit.room import Room, RoomError, client, plots, pool
from nbkit.room.schema import MAX_BYTES
from nbkit.workshop import summary

REFERENCE = Path(__file__).resolve().parents[1] / "docs/reference/summary-cpu.json"
CPUS = ["AMD EPYC 7B13", "Intel(R) Xeon(R) Processor"]


# ------------------------------------------------------------------------------------------------ laptops


def laptop_summary(i: int) -> dict:
    """Laptop i's summary: the reference cpu summary of 01-03 as if run with seed i, each claim's effect and
    interval moved by a fixed amount (a seed effect), its curves likewise, its CPU one of two."""
    ref = json.loads(REFERENCE.read_text())
    rng = np.random.default_rng(i)
    out = copy.deepcopy(ref)
    out["machine"]["cpu"] = CPUS[i % 2]
    out["notebooks"] = {}
    for nn in ("01", "02", "03"):
        nb = copy.deepcopy(ref["notebooks"][nn])
        nb["seed"], nb["replicate_key"], nb["minutes"] = (
            i,
            f"{nn}aaaa",
            round(nb["minutes"] * (1 + 0.1 * i), 2),
        )
        for c in nb["claims"]:
            if c.get("effect") is not None:
                shift = float(rng.normal(0, 0.05))
                c["effect"], c["ci_lo"], c["ci_hi"] = (
                    c["effect"] + shift,
                    c["ci_lo"] + shift,
                    c["ci_hi"] + shift,
                )
        for curve in nb["curves"].values():
            for col, v in list(curve.items())[1:]:
                if isinstance(v, list):
                    curve[col] = [y + float(rng.normal(0, 0.03)) if isinstance(y, float) else y for y in v]
        out["notebooks"][nn] = nb
    return out


def envelope(i: int, sent: float | None = None, **changes) -> dict:
    data = {
        "nbkit_room": 1,
        "laptop": {"id": f"{i:032x}", "name": f"sim-{i}"},
        "submission": os.urandom(16).hex(),
        "sent": sent or time.time(),
        "summary": laptop_summary(i),
    }
    data.update(changes)
    return data


def files(folder: Path) -> list[Path]:
    return sorted((folder / "notebooks").rglob("*.json")) if (folder / "notebooks").exists() else []


# ---------------------------------------------------------------------------------------- seeds and replicates


def test_nbkit_seed_sets_every_config_seed(monkeypatch):
    monkeypatch.delenv("NBKIT_SEED", raising=False)
    assert BudgetConfig.for_profile("smoke").seed == 0
    monkeypatch.setenv("NBKIT_SEED", "7")
    assert BudgetConfig.for_profile("smoke").seed == BudgetConfig.for_profile("cpu").seed == 7
    assert BudgetConfig.for_profile("smoke", seed=3).seed == 3  # an explicit override still wins
    cfg, _ = parse_cli(BudgetConfig, PROFILES, ["--profile", "smoke"])
    assert cfg.seed == 7
    cfg, _ = parse_cli(BudgetConfig, PROFILES, ["--profile", "smoke", "--seed", "5"])
    assert cfg.seed == 5  # the command line's flag is last
    monkeypatch.setenv("NBKIT_SEED", " Ada ")
    assert BudgetConfig.for_profile("smoke").seed == seed_from("ada") != seed_from("grace")
    assert 0 <= seed_from("ada") < 1_000_000
    for bad in ("-3", "", str(2**40)):
        with pytest.raises(ConfigError, match="NBKIT_SEED"):
            seed_from(bad)


def test_a_seeded_replicate_gets_its_own_run_names(monkeypatch, tmp_path):
    """Seeds other than the default join the profile in every run name, so one registry holds a laptop's replicates
    side by side: the archive's pattern for a seed takes that seed's runs and no other's."""
    from nbkit.experiments.rft.config import RftConfig
    from nbkit.experiments.star.config import StarConfig
    from nbkit.workshop.archive import notebook_runs

    monkeypatch.delenv("NBKIT_SEED", raising=False)
    assert (
        StarConfig.for_profile("cpu").run_name("iter1") == "cpu-star-iter1"
    )  # the default seed keeps its names
    assert RftConfig.for_profile("cpu", seed=0).run_name() == "cpu-rft"
    monkeypatch.setenv("NBKIT_SEED", "7")
    assert StarConfig.for_profile("cpu").run_name("iter1") == "cpu-s7-star-iter1"
    assert StarConfig.for_profile("cpu", name="star-norat").run_name("iter1") == "cpu-s7-star-norat-iter1"
    assert RftConfig.for_profile("cpu").run_name("warmstart") == "cpu-s7-rft-warmstart"
    budget = BudgetConfig.for_profile("cpu")
    assert budget.run_name("sft4") == f"cpu-s7-{budget.name}-sft4"
    assert notebook_runs("01", "cpu") == ["cpu-s7-star-*"]


@dataclass
class _Config:
    steps: int = 3
    seed: int = 0
    profile: str = "smoke"


def test_the_replicate_key_ignores_only_the_seed(monkeypatch):
    monkeypatch.delenv(summary.PART_DIR_ENV, raising=False)
    a, b, c = (
        summary.record("02", config=cfg) for cfg in (_Config(seed=1), _Config(seed=2), _Config(steps=4))
    )
    assert a["replicate_key"] == b["replicate_key"] != c["replicate_key"]
    assert a["config_hash"] != b["config_hash"]  # the exact settings still differ
    assert (a["seed"], b["seed"]) == (1, 2)


# ------------------------------------------------------------------------------------------------ the maths


def test_random_effects_golden_numbers():
    # by hand: w = 100 each, fixed mean 0.3, Q = 100 x (0.04 + 0 + 0.04) = 8, C = 300 - 30000/300 = 200,
    # tau2 = (8 - 2) / 200 = 0.03, w* = 1 / (0.01 + 0.03) = 25, Hartung-Knapp q = 25 x 0.08 / 2 = 1,
    # se = sqrt(1 / 75), t(2) = 4.303
    r = pool.random_effects([0.1, 0.3, 0.5], [0.1, 0.1, 0.1])
    assert r["effect"] == pytest.approx(0.3)
    assert r["q"] == pytest.approx(8)
    assert r["tau"] ** 2 == pytest.approx(0.03)
    assert r["i2"] == pytest.approx(0.75)
    assert r["se"] == pytest.approx(math.sqrt(1 / 75))
    assert (r["lo"], r["hi"]) == pytest.approx(
        (0.3 - 4.303 * math.sqrt(1 / 75), 0.3 + 4.303 * math.sqrt(1 / 75))
    )
    # laptops that agree exactly: no between-seed spread, and the interval is the within-run one (q floored at 1)
    same = pool.random_effects([0.2] * 4, [0.05] * 4)
    assert same["tau"] == 0 and same["hi"] - 0.2 == pytest.approx(3.182 * 0.05 / 2)
    one = pool.random_effects([0.2], [0.05])
    assert one["effect"] == pytest.approx(0.2) and math.isnan(one["lo"])
    assert pool.t975(2) == 4.303 and pool.t975(40) == pytest.approx(2.021, abs=1e-3)
    assert pool.t975(120) == pytest.approx(1.980, abs=1e-3)


def direct_pool(effects, los, his, ns):
    """An independent computation of the pooled estimate: DerSimonian-Laird, Hartung-Knapp, written out."""
    y = np.array(effects)
    v = np.maximum((np.array(his) - np.array(los)) / 3.92, 1 / np.array(ns)) ** 2
    k = len(y)
    w = 1 / v
    q = sum(wi * (yi - sum(w * y) / sum(w)) ** 2 for wi, yi in zip(w, y))
    tau2 = max(0, (q - (k - 1)) / (sum(w) - sum(w**2) / sum(w)))
    ws = 1 / (v + tau2)
    mu = sum(ws * y) / sum(ws)
    se = math.sqrt(max(1, sum(ws * (y - mu) ** 2) / (k - 1)) / sum(ws))
    return mu, mu - pool.t975(k - 1) * se, mu + pool.t975(k - 1) * se, math.sqrt(tau2)


def entries_of(summaries: list[dict], nn: str, room: Room) -> list[dict]:
    for i, s in enumerate(summaries):
        room.store(
            {"nbkit_room": 1, "laptop": {"id": f"{i:032x}", "name": f"l{i}"}, "submission": f"{i + 1:032x}",
             "sent": 2e9, "summary": s}
        )  # fmt: skip
    return room.entries(nn)


def test_pooled_claims_match_a_direct_computation(tmp_path):
    entries = entries_of([laptop_summary(i) for i in range(8)], "01", Room(tmp_path))
    pooled = pool.pool_claims(entries)
    numeric = [c for c in entries[0]["notebook"]["claims"] if c.get("effect") is not None]
    assert len(pooled) == len(numeric) > 3 and (pooled["laptops"] == 8).all()
    for j, row in pooled.iterrows():
        claims = [e["notebook"]["claims"][j] for e in entries]
        mu, lo, hi, tau = direct_pool(*([c[k] for c in claims] for k in ("effect", "ci_lo", "ci_hi", "n")))
        assert (row["effect"], row["lo"], row["hi"], row["tau"]) == pytest.approx((mu, lo, hi, tau))
        assert row["AGREES"] + row["DEPARTS"] + row["INCONCLUSIVE"] == 8
    assert pooled["verdict"].iloc[0] == "AGREES"  # STaR's gain is far from 0 on every laptop
    assert "iteration 3" in pooled["claim"].iloc[0]


def test_verdict_counts_direction_and_text_claims(tmp_path):
    rows = [
        {"claim": "gain (acc 0.41)", "verdict": "DEPARTS", "effect": -0.30, "ci_lo": -0.4, "ci_hi": -0.2, "n": 50},
        {"claim": "gain (acc 0.52)", "verdict": "DEPARTS", "effect": -0.25, "ci_lo": -0.35, "ci_hi": -0.15, "n": 50},
        {"claim": "gain (acc 0.30)", "verdict": "INCONCLUSIVE", "effect": -0.2, "ci_lo": -0.45, "ci_hi": 0.05, "n": 50},
    ]  # fmt: skip
    texts = [
        "group: AGREES (exact): 5 prompts",
        "group: AGREES (exact): 7 prompts",
        "group: DEPARTS (exact): 2 prompts",
    ]
    summaries = [
        {"profile": "cpu", "notebooks": {"02": {"replicate_key": "abcdef", "claims": [r, {"claim": t, "verdict": t[7:14].strip()}]}}}
        for r, t in zip(rows, texts)
    ]  # fmt: skip
    pooled = pool.pool_claims(entries_of(summaries, "02", Room(tmp_path)))
    first, text = pooled.iloc[0], pooled.iloc[1]
    assert first["claim"] == "gain (acc …)"
    assert (first["DEPARTS"], first["INCONCLUSIVE"], first["AGREES"]) == (2, 1, 0)
    # no laptop agrees: the paper's side is the opposite of the departing laptops' effects, so a pooled effect
    # below 0 departs
    assert first["hi"] < 0 and first["verdict"] == "DEPARTS"
    assert (text["AGREES"], text["DEPARTS"], text["laptops"]) == (2, 1, 3) and math.isnan(text["effect"])


def test_a_level_claim_is_pooled_against_its_target(tmp_path):
    """ "4-digit accuracy at least 20%" is tested against 0.2, not 0: three laptops at 0.18-0.25 decide nothing."""
    summaries = [
        {"profile": "cpu", "notebooks": {"01": {"replicate_key": "abcdef", "claims": [
            {"claim": "4-digit accuracy, at least 20%", "verdict": "INCONCLUSIVE", "effect": e, "ci_lo": e - 0.1,
             "ci_hi": e + 0.1, "n": 48, "direction": 1, "null": 0.2}]}}}
        for e in (0.18, 0.21, 0.25)
    ]  # fmt: skip
    row = pool.pool_claims(entries_of(summaries, "01", Room(tmp_path))).iloc[0]
    assert row["lo"] > 0 and row["lo"] < 0.2 < row["hi"]  # on the paper's side of 0, not of the target
    assert row["null"] == 0.2 and row["verdict"] == "INCONCLUSIVE"
    assert "against 0.2 INCONCLUSIVE" in pool.text_report(Room(tmp_path).entries())


def test_claims_line_up_by_wording_when_a_laptop_has_one_more(tmp_path):
    assert pool.claim_keys(["at B = 16, SFT (acc 0.49)", "at B = 32, SFT (acc 0.61)", "gain: AGREES"]) == [
        "at B = #, SFT (acc #)|0",
        "at B = #, SFT (acc #)|1",
        "gain: VERDICT|0",
    ]
    a = [{"claim": "held-out gain", "verdict": "AGREES", "effect": 0.3, "ci_lo": 0.2, "ci_hi": 0.4, "n": 9}]
    b = [{"claim": "share kept", "verdict": "INCONCLUSIVE"}, *a]  # this laptop's loop made one claim more
    summaries = [
        {"profile": "cpu", "notebooks": {"01": {"replicate_key": "abcdef", "claims": c}}} for c in (a, b)
    ]
    pooled = pool.pool_claims(entries_of(summaries, "01", Room(tmp_path))).set_index("claim")
    assert pooled.loc["held-out gain", "laptops"] == 2 and pooled.loc["share kept", "laptops"] == 1


def test_export_writes_the_pooled_table_and_the_figures(tmp_path):
    import pandas as pd

    entries = entries_of([laptop_summary(i) for i in range(3)], "02", Room(tmp_path))
    paths = plots.export(entries, tmp_path / "exports")
    assert [p.name for p in paths] == ["laptops.csv", "pooled.csv"] + [
        f"{kind}-02-cpu-02aaaa.png" for kind in ("forest", "curves", "minutes")
    ]
    assert all(p.stat().st_size > 5_000 for p in paths[2:])
    table = pd.read_csv(paths[1])
    assert table["effect"].tolist() == pytest.approx(
        pool.pool_claims(entries)["effect"].tolist(), nan_ok=True
    )
    assert set(pd.read_csv(paths[0])["name"]) == {"l0", "l1", "l2"}


def test_curve_shapes():
    by_digit = pool.curve_rows("acc", {"1": 0.65, "2": 0.05})
    assert [(r["series"], r["x"], r["y"]) for r in by_digit] == [("acc", "1", 0.65), ("acc", "2", 0.05)]
    columns = pool.curve_rows("probe", {"step": [0, 8], "alone": [0.1, 0.2], "warm": [0.3, None]})
    assert [(r["series"], r["x"], r["y"]) for r in columns] == [
        ("alone", 0, 0.1),
        ("alone", 8, 0.2),
        ("warm", 0, 0.3),
    ]
    heat = pool.curve_rows(
        "heat", {"budget": [16, 16, 32], "fraction": [0.5, 1.0, 0.5], "acc": [0.1, 0.2, 0.3]}
    )
    assert [(r["series"], r["x"], r["y"]) for r in heat] == [
        ("budget = 16", 0.5, 0.1),
        ("budget = 16", 1.0, 0.2),
        ("budget = 32", 0.5, 0.3),
    ]


def test_curves_median_and_minutes(tmp_path):
    entries = entries_of([laptop_summary(i) for i in range(5)], "01", Room(tmp_path))
    frame = pool.curves(entries)
    med = pool.curve_medians(frame)
    at = frame[(frame["series"] == "acc_d3") & (frame["x"] == 1)]["y"]
    assert med[(med["series"] == "acc_d3") & (med["x"] == 1)]["median"].item() == pytest.approx(np.median(at))
    stages = pool.stage_minutes(entries)
    assert set(stages["stage"]) == {"01", "01 loop"} and set(stages["cpu"]) == {
        f"{c} (2 threads)" for c in CPUS
    }
    axes = [ax for ax in plots.overlay(entries).axes if ax.get_visible()]
    by_curve = {}
    for ax in axes:  # the series of one curve share a y scale: the runs compare by eye
        by_curve.setdefault(ax.get_title().split(":")[0], set()).add(ax.get_ylim())
    assert len(axes) > 1 and all(len(limits) == 1 for limits in by_curve.values())


# ------------------------------------------------------------------------------------- storing, and refusing


def test_a_second_submission_replaces_the_first(tmp_path):
    room = Room(tmp_path)
    first = room.store(envelope(1, sent=2e9))
    assert first["replaced"] == [] and len(files(tmp_path)) == 3
    again = envelope(1, sent=2e9 + 60)
    again["summary"]["notebooks"]["01"]["minutes"] = 99.0
    assert room.store(again)["replaced"] == ["01", "02", "03"]
    assert len(files(tmp_path)) == 3  # still one file per notebook for this laptop
    assert [e["notebook"]["minutes"] for e in room.entries("01")] == [99.0]
    assert not any(f"{1:032x}" in p.read_text() for p in files(tmp_path))  # the laptop id is never stored


def hostile(i=1):
    """(name, submission bytes, what the refusal says) for every kind of bad input."""
    ok = envelope(i)

    def changed(path, value):
        data = copy.deepcopy(ok)
        node = data
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        return json.dumps(data).encode()

    claim = ["summary", "notebooks", "01", "claims", 0]
    return [
        ("not JSON", b"{'laptop': ", "not valid JSON"),
        ("NaN", changed([*claim, "effect"], float("nan")), "NaN is not a number JSON allows"),
        ("Infinity", changed([*claim, "ci_hi"], float("inf")), "Infinity is not a number JSON allows"),
        ("too deep", b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        ("no laptop", json.dumps({k: v for k, v in ok.items() if k != "laptop"}).encode(), "'laptop' is a required"),
        ("huge effect", changed([*claim, "effect"], 1e300), "effect: 1e+300 is greater than the maximum"),
        ("1e999", changed([*claim, "effect"], float("inf")).replace(b"Infinity", b"1e999"), "inf is greater than"),
        ("negative minutes", changed(["summary", "notebooks", "01", "minutes"], -5), "minutes: -5"),
        ("interval upside down", changed([*claim, "ci_lo"], 9.0), "ci_lo 9.0 is above ci_hi"),
        ("unknown verdict", changed([*claim, "verdict"], "MAYBE"), "verdict"),
        ("bad notebook", changed(["summary", "notebooks"], {"../x": {}}), "notebooks"),
        ("script name", changed(["laptop", "name"], "<script>"), "laptop.name"),
        ("long claim", changed([*claim, "claim"], "x" * 5000), "is too long"),
        ("many claims", changed(["summary", "notebooks", "01", "claims"], [{"claim": "c", "verdict": None}] * 500), "claims"),
        ("bad id", changed(["laptop", "id"], "not-hex"), "laptop.id"),
        ("oversized", json.dumps(ok).encode() + b" " * MAX_BYTES, "too large"),
    ]  # fmt: skip


@pytest.mark.parametrize("name, body, says", hostile(), ids=[h[0] for h in hostile()])
def test_hostile_submissions_are_refused_and_store_nothing(tmp_path, name, body, says):
    room = Room(tmp_path)
    with pytest.raises(RoomError, match=None) as e:
        room.store_bytes(body)
    assert says in str(e.value), str(e.value)
    assert len(str(e.value)) < 300  # one line, not an echo of the input
    assert files(tmp_path) == []


def test_replays_are_refused_and_change_nothing(tmp_path):
    room = Room(tmp_path)
    data = envelope(1, sent=2e9)
    room.store(data)
    before = [p.read_text() for p in files(tmp_path)]
    with pytest.raises(RoomError, match="replayed submission: the room already holds this submission") as e:
        room.store(data)
    assert e.value.status == 409
    with pytest.raises(RoomError, match="a newer one"):
        room.store(envelope(1, sent=2e9 - 60))  # an older send, captured and replayed
    assert [p.read_text() for p in files(tmp_path)] == before


# --------------------------------------------------------------------------------------- the laptop's side


def test_submit_without_a_room_says_how_and_sends_nothing(monkeypatch, capsys):
    monkeypatch.delenv("NBKIT_ROOM", raising=False)
    assert client.submit({"notebook": "01", "claims": []}) is None
    assert "not sent: no room set" in capsys.readouterr().out


def test_offline_path_a_file_into_the_inbox(tmp_path, monkeypatch):
    monkeypatch.setenv("NBKIT_LAPTOP_ID", "c0ffee" * 5 + "00")
    monkeypatch.delenv("NBKIT_ROOM", raising=False)
    room = Room(tmp_path / "room")
    part = {"notebook": "02", "profile": "cpu", "replicate_key": "abcdef", "seed": 3, "machine": {"cpu": "M1"},
            "claims": [{"claim": "c", "verdict": "AGREES", "effect": 0.2, "ci_lo": 0.1, "ci_hi": 0.3, "n": 9}]}  # fmt: skip
    written = client.submit(part, to=str(room.inbox), name="Grace")
    (room.inbox / "summary.json").write_text(json.dumps(laptop_summary(4)))  # a plain summary.json, copied
    (room.inbox / "broken.json").write_text('{"notebooks": {"01": {"minutes": -1}}}')
    stored, refused = room.read_inbox()
    assert written.exists() and len(stored) == 2
    assert refused == ["broken.json: summary.notebooks.01.minutes: -1 is less than the minimum of 0"]
    assert {e["laptop"]["name"] for e in room.entries()} == {"Grace", "summary"}
    assert room.read_inbox() == ([], refused)  # read again: nothing new, the same refusal
    assert len(files(room.folder)) == 4  # 02 from Grace, 01-03 from the copied summary


def test_cli_submit_writes_the_file(tmp_path, monkeypatch):
    from nbkit.cli import main

    monkeypatch.setenv("NBKIT_LAPTOP_ID", "ab" * 16)
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(laptop_summary(2)))
    assert main(["room", "submit", str(path), "--to", str(tmp_path / "usb"), "--name", "Ada"]) == 0
    (sent,) = (tmp_path / "usb").glob("*.json")
    assert json.loads(sent.read_text())["laptop"]["name"] == "Ada"
    assert main(["room", "submit", str(tmp_path / "missing.json"), "--to", str(tmp_path)]) == 2
    assert main(["room", "--bogus"]) == 2  # one line, no traceback
    assert main(["room", "--auth", "nopassword"]) == 2


def test_cli_pool_prints_the_pooled_view_of_files(tmp_path, capsys):
    """`nbkit room pool`: one person's seeds pooled in the terminal, the numbers the room's page would show."""
    from nbkit.cli import main

    paths = []
    for i in range(4):
        (tmp_path / f"reports-seed-{i}").mkdir()
        paths.append(tmp_path / f"reports-seed-{i}" / "summary.json")
        paths[-1].write_text(json.dumps(laptop_summary(i)))
    (tmp_path / "broken.json").write_text('{"notebooks": {"02": {"minutes": -1}}}')
    out = tmp_path / "pooled"
    assert main(["room", "pool", *map(str, paths), str(tmp_path / "broken.json"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "broken.json: not pooled: summary.notebooks.02.minutes: -1" in text
    assert "02 · cpu · 02aaaa: 4 laptops, seeds 0, 1, 2, 3" in text
    room = Room(tmp_path / "room")
    for i, path in enumerate(paths):
        room.store_file(path, f"seed-{i}")
    group = room.entries("02")
    direct = pool.pool_claims(group)
    mine = pool.laptop_claims(group).sort_values("seed")
    for row in direct.dropna(subset=["effect"]).itertuples():  # every pooled number and each seed's estimate
        assert f"pooled {row.effect:+.3f} [{row.lo:+.3f}, {row.hi:+.3f}] {row.verdict}" in text
        own = " ".join(f"{x:+.3f}" for x in mine[mine["key"] == row.key]["effect"])
        assert f"each laptop (seed order): {own}" in text
    assert (out / "pooled.csv").exists() and (out / "laptops.csv").exists()
    assert set(pd.read_csv(out / "laptops.csv")["name"]) == {f"reports-seed-{i}" for i in range(4)}
    assert main(["room", "pool", str(tmp_path / "broken.json")]) == 1
    assert "nothing to pool" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ a running room


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def running_room(tmp_path):
    from nbkit.serve.room import RoomConfig, serve

    cfg = RoomConfig(
        folder=str(tmp_path / "room"), port=free_port(), auth="teacher:pw", key="k3y", refresh_s=0
    )
    said = []
    demo, key = serve(cfg, say=said.append)
    try:
        yield demo.local_url.rstrip("/"), Room(cfg.folder), said
    finally:
        demo.close()


def post(url, data, key="k3y"):
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(url + client.SUBMIT_PATH, content=body, headers=headers, timeout=60)


def test_a_running_room_pools_8_laptops_and_refuses_the_rest(running_room):
    url, room, said = running_room
    assert any("--key k3y" in line for line in said)
    assert httpx.get(url + "/config").status_code == 401  # the page needs the instructor's login
    for i in range(8):
        r = post(url, envelope(i))
        assert r.status_code == 200, r.text
    assert "from sim-7" in r.json()["message"]
    assert post(url, envelope(8), key="wrong").status_code == 401
    assert post(url, envelope(8), key="").status_code == 401
    assert post(url, json.dumps(envelope(8)).encode() + b" " * MAX_BYTES).status_code == 413
    r = post(url, envelope(8, nbkit_room=2))
    assert r.status_code == 400 and "nbkit_room" in r.json()["error"]
    replay = envelope(3)
    assert (
        post(url, replay).status_code == 200 and post(url, replay).status_code == 409
    )  # 3 replaced, then replayed
    assert len(files(room.folder)) == 8 * 3
    entries = room.entries("02")
    assert sorted(e["laptop"]["name"] for e in entries) == [f"sim-{i}" for i in range(8)]
    pooled = pool.pool_claims(entries)
    claim = [e["notebook"]["claims"][1] for e in entries]  # RFT with a warm-start: probe reward rises
    mu, lo, hi, _ = direct_pool(*([c[k] for c in claim] for k in ("effect", "ci_lo", "ci_hi", "n")))
    assert (pooled.loc[1, "effect"], pooled.loc[1, "lo"], pooled.loc[1, "hi"]) == pytest.approx((mu, lo, hi))


def test_a_laptop_over_its_rate_is_refused(running_room):
    url, room, _ = running_room
    codes = [post(url, envelope(5, sent=2e9 + s)).status_code for s in range(7)]
    assert codes == [200] * 6 + [429]
    assert room.entries("01")[0]["sent"] == 2e9 + 5


def test_30_laptops_submitting_at_once(running_room):
    url, room, _ = running_room
    payloads = [envelope(i) for i in range(30)]
    with ThreadPoolExecutor(30) as ex:
        codes = list(ex.map(lambda d: post(url, d).status_code, payloads))
    assert codes == [200] * 30
    assert len(files(room.folder)) == 90
    assert pool.pool_claims(room.entries("03"))["laptops"].eq(30).all()
    assert not list(room.folder.rglob(".*.json*"))  # no temporary file left behind

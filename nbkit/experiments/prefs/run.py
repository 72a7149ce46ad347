"""The loop: votes -> a snapshot of preference pairs -> DPO -> the new model hot-added to an arena -> new blind
rounds against the old model, judged by the same scripted judge.

    run(cfg, registry) = run_plan(plan(cfg, registry)): ensure_votes -> ensure_dpo -> ensure_compare -> PrefsResult

Three registry runs, named after what they hold ("{profile}-prefs-{config_id}-{source}-{stage}", source "judge" or
"arena" + the snapshot id of the rounds), so a rerun reuses them and a new vote in the arena makes new ones:
- votes: the raw vote rows (rounds.jsonl), the pairs (pairs.jsonl) and the snapshot (snapshot.json: round ids,
  counts, position bias, voters, audit);
- dpo: a LoRA adapter on the model, parent the model's base run; its config names the votes run and the snapshot id
  (its data's lineage);
- compare: the new blind rounds (rounds.jsonl) and the leaderboard, parent the dpo run. The rounds are drawn by a
  real `nbkit.serve.backend.Backend` whose pool starts with the old model alone: the new one joins it through the
  instructor's hot-add (`Backend.add_to_pool`), as in the room.

The stage functions are parameters of `run` (tests pass fakes): `cast_votes`, `train` and `answer`.
"""

from __future__ import annotations

import random
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from nbkit.experiments.prefs.config import PrefsConfig, PrefsError
from nbkit.experiments.prefs.data import arena_export, arena_file, build_task, questions
from nbkit.experiments.prefs.judge import JUDGE, scripted_judge
from nbkit.experiments.prefs.result import PrefsResult
from nbkit.files import read_jsonl, write_jsonl

MANY = 10**9  # the judge's own store: no per-minute vote caps (they guard the room's arena, not a script)


# ----------------------------------------------------------------------------------- stages (tests pass fakes)


def answer(cfg: PrefsConfig, model, tok, prompts: list[str], k: int = 1, seed: int = 0) -> list[list[str]]:
    """k sampled answers to each prompt (a user turn), batched (`nbkit.sampling.sample`): shape (n_prompts, k)."""
    from nbkit.sampling import sample

    out = sample(
        model,
        tok,
        prompts,
        k=k,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=seed,
        batch_size=cfg.batch,
        desc="answers",
    )
    return out.texts()


def judge_vote(store, round_id: str, outcome: str) -> None:
    """The judge's vote on a served round, as attendee "scripted-judge" (never capped: see MANY)."""
    caps = dict(per_session=MANY, per_client=MANY, per_attendee=MANY)
    store.vote_round(round_id, outcome, session=JUDGE, attendee=JUDGE, **caps)


def cast_votes(cfg: PrefsConfig, model, tok, prompts: list[str], store, label: str, answer=answer) -> None:
    """The scripted judge's votes on the model's own answers: one round per prompt in `store` (a VoteStore), both
    sides answered by the model (`label`), two samples, judged by `scripted_judge`."""
    for i, (prompt, (a, b)) in enumerate(zip(prompts, answer(cfg, model, tok, prompts, k=2, seed=cfg.seed))):
        rid = f"judge-{cfg.seed}-{i}"
        store.open_round(rid, label, label, session=JUDGE, attendee=JUDGE)
        store.serve_turn(rid, prompt, a, b)
        judge_vote(store, rid, scripted_judge(prompt, a, b))


def train(cfg: PrefsConfig, model, tok, pairs: list[dict], writer):
    """DPO on the pairs (TRL's DPOTrainer through `nbkit.train.dpo`), LoRA by default; returns the trainer."""
    from nbkit.train import dpo, lora_config

    return dpo(
        model,
        tok,
        pairs,
        cfg.epochs,
        cfg.lr,
        cfg.beta,
        cfg.batch_size,
        cfg.max_length,
        run=writer,
        lora=lora_config(r=cfg.lora_r, alpha=2 * cfg.lora_r) if cfg.lora else None,
        seed=cfg.seed,
    )


# --------------------------------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """The loop planned before anything loads: where its votes come from (an export of the arena's, or None: the
    judge's), its questions, its run names, the registry and the stage functions."""

    cfg: PrefsConfig
    reg: object  # nbkit.runs.Registry
    task: object
    vote_questions: list
    test_questions: list
    export: object  # nbkit.serve.votes.VoteExport of the arena's votes, or None: the scripted judge votes
    names: dict
    cast_votes: Callable = cast_votes
    train: Callable = train
    answer: Callable = answer

    @property
    def source(self) -> str:
        return "judge" if self.export is None else "arena"

    @property
    def config(self) -> dict:
        return {**asdict(self.cfg), "source": self.source}


def run_names(cfg: PrefsConfig, export=None) -> dict:
    """Example (profile cpu, config id 1a2b3c, judge votes): "cpu-prefs-1a2b3c-judge-votes", "...-judge-dpo",
    "...-judge-compare"; arena votes with snapshot 9f8e7d: "cpu-prefs-1a2b3c-arena9f8e7d-votes", ..."""
    tag = "judge" if export is None else f"arena{export.snapshot_id}"
    return {stage: cfg.run_name(tag, stage) for stage in ("votes", "dpo", "compare")}


def plan(cfg: PrefsConfig, registry=None, **stages) -> Plan:
    """Plan (or fail, in one line) the loop of `cfg`: reads the arena's votes when the config allows them."""
    from nbkit.runs import Registry

    reg = registry if registry is not None else Registry()
    task = build_task(cfg)
    export = arena_export(cfg, reg)
    return Plan(cfg, reg, task, *questions(task, cfg), export, run_names(cfg, export), **stages)


def dry_run(cfg: PrefsConfig, registry=None) -> str:
    """What `run(cfg, registry)` would do, without a model: where the votes come from and the runs it registers."""
    import math

    from nbkit.experiments import n_steps, plan_text
    from nbkit.runs import base_run_name

    p = plan(cfg, registry)
    if p.export is None:
        votes = (
            f"the scripted judge, {cfg.n_votes} rounds on {cfg.model}'s own answers to arithmetic questions"
        )
        n_pairs = cfg.n_votes  # at most: ties are left out
    else:
        votes = f"the arena's, {arena_file(cfg, p.reg)}: " + " ".join(p.export.lines()[:1])
        n_pairs = len(p.export.pairs)
    steps = max(1, math.ceil(n_pairs * cfg.epochs / cfg.batch_size))
    data = [f"model: {cfg.model} (not loaded)", f"votes: {votes}", f"new blind rounds: {cfg.eval_rounds}"]
    runs = [
        (base_run_name(cfg.model), "base", f"{cfg.model} as it is", 0),
        (p.names["votes"], "votes", "the votes, their preference pairs and the snapshot", 0),
        (p.names["dpo"], "dpo", f"{'LoRA ' * cfg.lora}DPO on <= {n_pairs} pairs, <= {n_steps(steps)}", steps),
        (p.names["compare"], "compare", f"hot-add, then {cfg.eval_rounds} blind rounds judged", 0),
    ]
    return plan_text(data, runs, p.reg)


# ----------------------------------------------------------------------------- registry steps: reuse, or build


def load_model(source: str):
    from nbkit.models import load

    return load(source, dtype="float32")


def ensure_votes(p: Plan):
    """The votes snapshot: the arena's export as planned, or the scripted judge's votes cast now (into a scratch
    VoteStore, through the same round protocol as the arena's) and exported."""
    from nbkit.runs import base_run
    from nbkit.serve.arena import VoteStore
    from nbkit.serve.votes import VotesError, export_pairs

    def build(w):
        start, vote_seconds, export = time.perf_counter(), 0.0, p.export
        if export is None:  # the judge's raw votes are kept (rounds.jsonl); an arena's stay in its own file
            model, tok = load_model(p.cfg.model)
            with tempfile.TemporaryDirectory(prefix="nbkit-judge-") as tmp:
                store = VoteStore(Path(tmp) / "judge.sqlite")
                prompts = [p.task.prompt(ex) for ex in p.vote_questions]
                p.cast_votes(p.cfg, model, tok, prompts, store, p.cfg.model, answer=p.answer)
                rows = store.log()
            write_jsonl(Path(w.path) / "rounds.jsonl", rows)
            vote_seconds, start = time.perf_counter() - start, time.perf_counter()
            try:
                export = export_pairs(rows, p.cfg.min_pairs, p.cfg.drop_flagged)
            except VotesError as e:  # the judge tied too often: its "more votes" is a larger n_votes
                raise PrefsError(f"the scripted judge's {len(rows)} votes (n_votes): {e}") from None
        export.save(w.path)
        w.set_summary(
            **export.counts,
            snapshot_id=export.snapshot_id,
            source=p.source,
            left_wins=export.audit.left,
            right_wins=export.audit.right,
            flagged_voters=export.audit.flagged,
            vote_seconds=round(vote_seconds, 1),
            export_seconds=round(time.perf_counter() - start, 2),
        )

    parent = base_run(p.reg, p.cfg.model) if p.export is None else None
    return p.reg.ensure(p.names["votes"], "votes", p.config, build, parent, everyone=False)


def ensure_dpo(p: Plan, votes):
    """DPO on the snapshot's pairs, from the model the votes were cast on; its lineage: the model's base run as
    parent, the votes run and its snapshot id in the config."""
    from nbkit.runs import base_run

    config = {**p.config, "votes_run": votes.name, "snapshot_id": votes.summary["snapshot_id"]}

    def build(w):
        start = time.perf_counter()
        pairs = read_jsonl(votes.path / "pairs.jsonl")
        model, tok = load_model(p.cfg.model)
        trainer = p.train(p.cfg, model, tok, pairs, w)
        w.save_model(trainer.model, tok)
        logs = [h for h in trainer.state.log_history if "rewards/accuracies" in h]
        w.set_summary(
            n_pairs=len(pairs),
            steps=trainer.state.global_step,
            votes_run=votes.name,
            snapshot_id=votes.summary["snapshot_id"],
            final_reward_accuracy=logs[-1]["rewards/accuracies"] if logs else None,
            final_reward_margin=logs[-1].get("rewards/margins") if logs else None,
            train_seconds=round(time.perf_counter() - start, 1),
        )

    return p.reg.ensure(p.names["dpo"], "dpo", config, build, base_run(p.reg, p.cfg.model))


def hot_add(p: Plan, dpo, arena_db: Path):
    """A Backend serving the old model alone, then the new one added through the instructor's action. Returns
    (backend, seconds the hot-add took)."""
    from nbkit.serve.backend import Backend, ServeConfig

    password = secrets.token_urlsafe(8)
    cfg = ServeConfig(models=[p.cfg.model], arena_db=str(arena_db), instructor=password)
    backend = Backend(cfg, p.reg)
    backend.arena.rng = random.Random(p.cfg.seed)
    backend.arena.pool = [p.cfg.model]  # a pool of one until the new model joins
    start = time.perf_counter()
    backend.add_to_pool(dpo.name, password)
    return backend, time.perf_counter() - start


def blind_rounds(p: Plan, backend, old: str, new: str) -> list[dict]:
    """`eval_rounds` new blind rounds drawn by the backend's arena (which side is which: the server's draw), every
    answer sampled in batches, each round judged by the scripted judge. Returns the rounds' vote rows."""
    prompts = [p.task.prompt(ex) for ex in p.test_questions]
    answers = {
        label: [texts[0] for texts in p.answer(p.cfg, *backend.model(label), prompts, seed=p.cfg.seed + 1)]
        for label in (old, new)
    }
    store = backend.votes
    for i, prompt in enumerate(prompts):
        rnd = backend.arena.new_round(session=JUDGE, attendee=JUDGE)
        left, right = rnd["pair"]
        a, b = answers[left][i], answers[right][i]
        store.serve_turn(rnd["id"], prompt, a, b)
        judge_vote(store, rnd["id"], scripted_judge(prompt, a, b))
    return store.log()


def ensure_compare(p: Plan, dpo):
    """The new model hot-added to an arena of the old one, then the new blind rounds (`blind_rounds`)."""
    from nbkit.serve.arena import leaderboard

    def build(w):
        # The vote file outlives this build: the Backend's leaderboard thread polls it for the rest of the process
        # (a Backend has no close()), and a deleted file would make it print an error every few seconds.
        backend, add_seconds = hot_add(
            p, dpo, Path(tempfile.mkdtemp(prefix="nbkit-compare-")) / "arena.sqlite"
        )
        start = time.perf_counter()
        rows = blind_rounds(p, backend, p.cfg.model, dpo.name)
        board = leaderboard(backend.votes.battles(), n_boot=200, seed=p.cfg.seed)  # as the arena shows it
        write_jsonl(Path(w.path) / "rounds.jsonl", rows)
        w.set_summary(
            old=p.cfg.model,
            new=dpo.name,
            rounds=len(rows),
            hot_add_seconds=round(add_seconds, 1),
            rounds_seconds=round(time.perf_counter() - start, 1),
            leaderboard=board.to_dict("records"),
        )

    return p.reg.ensure(p.names["compare"], "compare", {**p.config, "dpo_run": dpo.name}, build, dpo.name)


# ------------------------------------------------------------------------------------------------------ run


def run(
    cfg: PrefsConfig,
    registry=None,
    *,
    progress: bool = True,
    cast_votes: Callable = cast_votes,
    train: Callable = train,
    answer: Callable = answer,
) -> PrefsResult:
    """Run (or resume) the loop of `cfg` in `registry` (default: the project's). The stage functions default to
    the real ones (tests pass fakes). -> PrefsResult"""
    return run_plan(plan(cfg, registry, cast_votes=cast_votes, train=train, answer=answer))


def run_plan(p: Plan) -> PrefsResult:
    """Run (or resume) a planned loop on the votes it planned with: an arena that took more votes since the plan
    (the notebook plans in its first cell) keeps them for the next plan. -> PrefsResult"""
    from nbkit.experiments.budget.run import quiet_loaders

    start = time.perf_counter()
    with quiet_loaders():
        votes = ensure_votes(p)
        dpo = ensure_dpo(p, votes)
        compare = ensure_compare(p, dpo)
    rows = read_jsonl(compare.path / "rounds.jsonl")
    return PrefsResult(p.reg, votes.name, dpo.name, compare.name, rows, time.perf_counter() - start)

"""Hand finished runs to someone else: `nbkit runs export NAME... -o FILE.tar` and `nbkit runs import FILE.tar`.

An instructor exports a STaR loop; each attendee imports it and can open it in the compare app, or resume it with
`nbkit.experiments.star.run`, with nothing recomputed.

The archive is a plain tar (checkpoints are safetensors, which do not compress):

    nbkit-export.json           format, source registry, and per run: name, parent, sha256 of every file
    runs/<name>/...             each run's folder as it is in the registry (wandb files are not carried)

- Export carries the lineage: every ancestor comes along unless `parents=False` (`--no-parents`). Names may be
  shell patterns: `nbkit runs export 'cpu-star-*' -o star.tar` takes a whole STaR loop and its ablation arms.
- `nbkit runs export --notebook 01 [--profile cpu] -o star.tar` takes every run notebook 01 registers in that
  profile (`notebook_runs`), so that a notebook run on the imported registry trains nothing.
- Import verifies every checksum before anything is registered, writes each run under .pending/ and renames it in,
  parents first. A name that exists already is refused, unless it is the same run (same kind and creation time:
  skipped) or `rename=True`, which picks `NAME-imported` (then -2, -3...) and rewrites the children's parent.
- Adapters name their base by absolute path (see `RunWriter.save_model`); import points them at the runs' new home.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import time
import uuid
from pathlib import Path

from nbkit.errors import RunError
from nbkit.files import atomic_write, io_error
from nbkit.runs import RUN_FILE, Registry

MANIFEST = "nbkit-export.json"
FORMAT = 1


def _sha256(stream, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    while block := stream.read(chunk):
        h.update(block)
    return h.hexdigest()


def notebook_runs(notebook: str, profile: str = "cpu") -> list[str]:
    """The names (shell patterns) of every run notebook `notebook` ("01", or "01_star") registers in `profile`,
    from the experiment configs the notebooks build; their ancestors (base-<model>, the primer) come with them.

    Example: notebook_runs("01") -> ["cpu-star-*"] (the loop and its ablation arms, e.g. cpu-star-norat-iter1);
    notebook_runs("03", "smoke") -> ["smoke-budget-2fcfcb-*"] (the sweep the profile's config names);
    notebook_runs("04") -> ["cpu-prefs-38bd8c-*"] (the votes, the DPO model and the new blind rounds).
    """
    from nbkit.experiments.budget import BudgetConfig
    from nbkit.experiments.prefs import PrefsConfig
    from nbkit.experiments.rft import RftConfig
    from nbkit.experiments.star import StarConfig
    from nbkit.runs import run_name

    patterns = {
        "00": lambda: [run_name(profile, "tour", "eval")],
        "01": lambda: [StarConfig.for_profile(profile).run_name("*")],  # arms are named star-<arm>
        "02": lambda: [RftConfig.for_profile(profile).run_name("*")],  # arms are named rft-<arm>
        "03": lambda: [BudgetConfig.for_profile(profile).run_name("*")],
        "04": lambda: [PrefsConfig.for_profile(profile).run_name("*")],  # votes, dpo, compare; judge or arena
    }
    key = str(notebook)[:2]
    if key not in patterns:
        raise RunError(f"no notebook {notebook!r}: choose one of {', '.join(patterns)}")
    return patterns[key]()


def with_parents(reg: Registry, names: list[str], parents: bool = True) -> list[str]:
    """The runs to export, parents before children. A name may be a shell pattern ("cpu-star-*": a whole loop,
    whose iterations are siblings, not ancestors). Example: ["dpo"] -> ["base", "sft", "dpo"]."""
    import fnmatch

    out: list[str] = []
    expanded = []
    for name in names:
        if any(c in name for c in "*?["):
            matched = fnmatch.filter(reg.names(), name)
            if not matched:
                raise RunError(f"no run matches {name!r} in {reg.root}")
            expanded += matched
        else:
            expanded.append(name)
    for name in expanded:
        chain = [r.name for r in reg.lineage(name)] if parents else [reg.get(name).name]
        out += [n for n in chain if n not in out]
    return out


def export_runs(reg: Registry, names: list[str], out: str | os.PathLike, parents: bool = True) -> dict:
    """Write runs `names` (and their ancestors unless parents=False) to the tar file `out`; returns the manifest."""
    if not names:
        raise RunError("nbkit runs export NAME... -o FILE.tar: give at least one run name")
    out = Path(out)
    runs = []
    for name in with_parents(reg, names, parents):
        run = reg.get(name)
        files = sorted(p for p in run.path.rglob("*") if p.is_file())
        sums = {}
        for f in files:
            with open(f, "rb") as fh:
                sums[f.relative_to(run.path).as_posix()] = _sha256(fh)
        runs.append({"name": name, "parent": run.parent, "kind": run.kind, "files": sums})
    manifest = {"format": FORMAT, "created": time.time(), "source": str(reg.root.resolve()), "runs": runs}
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}")
    try:
        with tarfile.open(tmp, "w") as tar:
            data = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
            for r in runs:
                for rel in r["files"]:
                    tar.add(reg.root / r["name"] / rel, arcname=f"runs/{r['name']}/{rel}", recursive=False)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise RunError(f"cannot write {out}: {e.strerror or e}; pick another -o path") from None
    return manifest


def _read_manifest(tar: tarfile.TarFile, path: Path) -> dict:
    try:
        manifest = json.load(tar.extractfile(MANIFEST))
    except (KeyError, ValueError, AttributeError):
        raise RunError(f"{path} is not an nbkit export (no readable {MANIFEST})") from None
    if manifest.get("format") != FORMAT:
        raise RunError(f"{path} has export format {manifest.get('format')!r}; this nbkit reads {FORMAT}")
    return manifest


def _same_run(reg: Registry, name: str, tar: tarfile.TarFile) -> bool:
    """True if `name` in the registry is the run the archive holds under that name (imported before)."""
    try:
        theirs = json.load(tar.extractfile(f"runs/{name}/{RUN_FILE}"))
        ours = reg.get(name)
    except (KeyError, ValueError, RunError):
        return False
    return ours.kind == theirs.get("kind") and ours.created == theirs.get("created")


def _plan_names(reg: Registry, manifest: dict, tar: tarfile.TarFile, rename: bool) -> dict[str, str | None]:
    """archive name -> name in this registry, or None where the same run is there already."""
    plan: dict[str, str | None] = {}
    taken = set(reg.names())
    clashes = []
    for r in manifest["runs"]:
        name = r["name"]
        if name not in taken:
            plan[name] = name
        elif _same_run(reg, name, tar):
            plan[name] = None
        elif rename:
            new, i = f"{name}-imported", 2
            while new in taken or new in plan.values():
                new, i = f"{name}-imported-{i}", i + 1
            plan[name] = new
        else:
            clashes.append(name)
        taken.add(plan.get(name) or name)
    if clashes:
        raise RunError(
            f"{', '.join(clashes)} already in {reg.root} (a different run of that name); nothing was imported. "
            "Add --rename to import under new names, or delete those runs first."
        )
    return plan


def _extract_verified(tar: tarfile.TarFile, src: str, files: dict, dest: Path, path: Path) -> None:
    """Copy run `src`'s files into `dest`, checking each sha256 against the manifest."""
    for rel, want in files.items():
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise RunError(f"{path}: unsafe file name {rel!r} in the archive; refusing it")
        member = f"runs/{src}/{rel}"
        try:
            fh = tar.extractfile(member)
        except KeyError:
            fh = None
        if fh is None:
            raise RunError(f"{path} lacks {member}, which its manifest lists: the archive is incomplete")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        with open(target, "wb") as out:
            while block := fh.read(1 << 20):
                h.update(block)
                out.write(block)
        if h.hexdigest() != want:
            raise RunError(
                f"{path}: checksum mismatch for {member}; the archive is damaged, export it again. Nothing imported."
            )


def _relink(dest: Path, rec: dict, plan: dict, reg: Registry) -> None:
    """Point an adapter's base at where its base run now lives, or at this machine's cache for a short name."""
    from nbkit.models import KNOWN, portable_base

    cfg_file = dest / "checkpoint" / "adapter_config.json"
    base = rec.get("base_model") or {}
    if not cfg_file.exists() or not base:
        return
    if base.get("run"):
        new_run = plan.get(base["run"]) or base["run"]
        if not (base["run"] in plan or (reg.root / new_run / "checkpoint").is_dir()):
            return  # its base run was not carried (--no-parents) and is not here: keep the old path
        new = str((reg.root / new_run / "checkpoint").resolve())
        base["run"] = new_run
    elif base.get("name") in KNOWN:
        new = portable_base(base["name"])
    else:
        return
    peft_cfg = json.loads(cfg_file.read_text())
    old = peft_cfg["base_model_name_or_path"]
    peft_cfg["base_model_name_or_path"] = base["peft"] = new
    atomic_write(cfg_file, json.dumps(peft_cfg, indent=2, sort_keys=True))
    card = dest / "checkpoint" / "README.md"
    if card.exists() and old:  # the model card names the base too
        atomic_write(card, card.read_text().replace(f"`{old}`", f"`{new}`"))
    rec["base_model"] = base


def import_runs(reg: Registry, path: str | os.PathLike, rename: bool = False) -> dict[str, str | None]:
    """Import the runs of an export into `reg`; returns archive name -> registered name (None: already there)."""
    path = Path(path)
    try:
        tar = tarfile.open(path, "r")
    except (OSError, tarfile.TarError) as e:
        raise RunError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    staged: list[tuple[str, Path]] = []
    try:
        with tar:
            manifest = _read_manifest(tar, path)
            plan = _plan_names(reg, manifest, tar, rename)
            pending = reg.root / ".pending"
            try:
                pending.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise io_error(e, reg.root, "write the run registry at") from None
            for r in manifest["runs"]:
                new = plan[r["name"]]
                if new is None:
                    continue
                dest = pending / f"import-{new}-{uuid.uuid4().hex[:8]}"
                staged.append((new, dest))
                _extract_verified(tar, r["name"], r["files"], dest, path)
                rec = json.loads((dest / RUN_FILE).read_text())
                rec["name"], rec["parent"] = new, plan.get(rec.get("parent"), None) or rec.get("parent")
                rec["imported"] = {"from": str(path.resolve()), "as": r["name"], "source": manifest["source"]}
                rec.pop("wandb", None)  # its wandb files stayed behind
                rec.pop("writer", None)
                _relink(dest, rec, plan, reg)
                atomic_write(dest / RUN_FILE, json.dumps(rec, indent=1))
        for new, dest in staged:  # parents first: every child finds its parent registered
            try:
                os.rename(dest, reg.root / new)
            except OSError:
                raise RunError(
                    f"run {new!r} was registered by someone else during the import; rerun it"
                ) from None
        staged.clear()
    finally:
        for _, dest in staged:
            shutil.rmtree(dest, ignore_errors=True)
    return plan

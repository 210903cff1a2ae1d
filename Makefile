# The README's commands. Each one creates the project-local environment (.venv) first when it is missing.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: env test test-fast demo demo-det clean-env

env:
	bash tools/setup_env.sh

test: env
	$(PY) -m pytest tests -q -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

test-fast: env
	$(PY) -m pytest tests -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

demo: env
	$(PY) tools/run_demo.py --task seg

demo-det: env
	$(PY) tools/run_demo.py --task det

clean-env:
	rm -rf .venv

# The README's two commands. Both bootstrap .venv when it is missing:
# torch==2.13.0 first (a local CPU wheel here), then the project with its pinned dependencies.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: test report venv clean device-deps

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests theory_checks -m "not slow" --benchmark-disable $(PYTEST_ARGS)

# The report is written even when a check fails; the exit status is still the run's.
report: $(STAMP)
	$(PY) -m sparse_bench run --profile quick --report-dir reports

clean:
	rm -rf reports/index.html results/

# Pure-Python dependencies for scripts/device_check.sh, carried to a GPU machine that reaches no package index.
device-deps: $(STAMP)
	$(PY) -m pip install --quiet --no-deps --target .device-deps click==8.5.1 threadpoolctl==3.8.0 py-cpuinfo2==10.1.1

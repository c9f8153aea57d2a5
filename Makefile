# Every target sets itself up: a virtual env in .venv with the pinned dependencies of requirements/dev.lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
export UV_CACHE_DIR ?= $(HOME)/.cache/uv

.PHONY: help install test demo demo-ui ui-test docs lint format typecheck lock emulator reliability system-test clean bench bench-smoke \
	test-compat test-af211 test-af30 lock-compat dist-check install-check \
	deployment-report lock-system

help:
	@echo "make demo      the lifecycle example DAG against a sped-up emulator (jobs, progress, loss, models, asset events),"
	@echo "               then the cleanup example DAG against a seeded one; prints what each did (about 35 s)"
	@echo "make demo-ui   Airflow's UI (the Fine-tuning page once the plugin exists) over a seeded emulator on 127.0.0.1;"
	@echo "               prints the URL and the admin and viewer logins; PORT=8080 picks the port; Ctrl-C stops it"
	@echo "make ui-test   the browser tests (tests/ui: Playwright driving Debian's Chromium) against that stack"
	@echo "make test      lint, type-check and run the whole test suite"
	@echo "make emulator  serve the four APIs on http://127.0.0.1:8089 (key emulator-key) with demo jobs; prints each URL"
	@echo "make reliability  run tests/reliability alone and rewrite the table of docs/reliability.md"
	@echo "make system-test  a production-shaped Airflow (PostgreSQL, Redis, 2 Celery workers, 2 triggerers) and its faults"
	@echo "make deployment-report  write the last system-test run into the table of docs/deployment.md"
	@echo "make lock-system  re-pin requirements/system.lock from requirements/system.in"
	@echo "make docs      build the documentation site (MkDocs, API reference from the docstrings) into build/site"
	@echo "make lock      re-pin requirements/dev.lock from requirements/dev.in"
	@echo "make test-compat  unit tests and example DAGs on Airflow 2.11 and 3.0 (own envs .venv-af211, .venv-af30)"
	@echo "make lock-compat  re-pin requirements/compat-*.lock from requirements/compat-*.in"
	@echo "make dist-check   build sdist + wheel, twine check, install the wheel in a fresh env, ask Airflow about it"
	@echo "make install-check  install the wheels as docs/install.md says, run an example DAG against the emulator"
	@echo "make bench     run the benchmarks (own env .venv-bench) and write BENCHMARKS.md (about 45 min)"
	@echo "make bench-smoke  every benchmark in a tiny quick mode (about 1 min); writes no file"

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): $(BIN)/uv requirements/dev.lock pyproject.toml emulator/pyproject.toml
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements/dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e . -e emulator
	@touch $@

install: $(STAMP)

lock: $(BIN)/uv
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 requirements/dev.in -o requirements/dev.lock

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

# make test renders the reliability records of its run to build/ (never to docs/) and fails if a reliability test
# failed or the table of docs/reliability.md no longer matches the run; make reliability is the only target that writes it.
RELIABILITY_JSON := build/reliability.json
# pytest-xdist workers: the suite mostly waits (retry backoffs, deadlines, polls over loopback), so more workers than
# cores pay off; each worker has its own emulator, AIRFLOW_HOME and metadata database.
TEST_WORKERS ?= 4
RELIABILITY_MD := build/reliability.md

test: $(STAMP) lint typecheck
	@mkdir -p $(dir $(RELIABILITY_JSON)) && rm -f $(RELIABILITY_JSON) $(RELIABILITY_MD)
	FT_RELIABILITY_REPORT=$(CURDIR)/$(RELIABILITY_JSON) $(BIN)/python -m pytest -n $(TEST_WORKERS); status=$$?; \
	$(BIN)/python scripts/reliability_report.py --check --from-json $(RELIABILITY_JSON) --output $(RELIABILITY_MD) \
	&& exit $$status

demo: $(STAMP)
	$(BIN)/python -m scripts.demo

PORT ?= 0
demo-ui: $(STAMP)
	$(BIN)/python -m scripts.ui_stack --port $(PORT)

# The browser tests drive Debian's Chromium (installed here when missing: CI runs as root on a fresh Debian machine);
# Playwright never downloads a browser. FT_UI_SCREENSHOTS=1 also writes docs/screenshots/.
CHROMIUM := /usr/bin/chromium
ui-test: $(STAMP)
	test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	FT_UI_TESTS=1 $(BIN)/python -m pytest -p no:cacheprovider tests/ui

# The documentation site: docs/ and the API reference from the docstrings, warnings as errors (mkdocs.yml: strict).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

emulator: $(STAMP)
	$(BIN)/ft-emulator --port 8089 --seed demo

bench: $(BIN)/uv
	sh benchmarks/venv.sh $(BIN)/uv $(PYTHON)
	.venv-bench/bin/python -m benchmarks --output BENCHMARKS.md

bench-smoke: $(BIN)/uv
	sh benchmarks/venv.sh $(BIN)/uv $(PYTHON)
	.venv-bench/bin/python -m benchmarks --smoke

reliability: $(STAMP)
	$(BIN)/python scripts/reliability_report.py

# -- the production-shaped deployment: PostgreSQL, Redis, CeleryExecutor, two workers, two triggerers -----------
# Its own env (requirements/system.lock: dev.lock's pins plus the Celery provider, the PostgreSQL drivers and the
# redis-server binary). scripts/system_services.py starts PostgreSQL and Redis on loopback around the tests and
# fails the run if a process or a port outlives it. The run's records render to build/deployment.md; make
# deployment-report writes them into the "Production deployment" table of docs/deployment.md.
SYSTEM_VENV := .venv-system
DEPLOYMENT_JSON := build/deployment.json

$(SYSTEM_VENV)/.installed: requirements/system.lock pyproject.toml $(BIN)/uv
	$(call compat-env,$(SYSTEM_VENV),requirements/system.lock)

system-test: $(SYSTEM_VENV)/.installed
	sh scripts/ensure_postgres.sh
	@mkdir -p $(dir $(DEPLOYMENT_JSON)) && rm -f $(DEPLOYMENT_JSON)
	$(SYSTEM_VENV)/bin/python scripts/system_services.py --report $(DEPLOYMENT_JSON) -- env FT_SYSTEM_TESTS=1 \
		FT_DEPLOYMENT_REPORT=$(CURDIR)/$(DEPLOYMENT_JSON) $(SYSTEM_VENV)/bin/python -m pytest -p no:cacheprovider tests/system
	$(SYSTEM_VENV)/bin/python scripts/deployment_report.py --check --from-json $(DEPLOYMENT_JSON) --output build/deployment.md

deployment-report: $(SYSTEM_VENV)/.installed
	$(SYSTEM_VENV)/bin/python scripts/deployment_report.py --from-json $(DEPLOYMENT_JSON) --page docs/deployment.md

lock-system: $(BIN)/uv
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 requirements/system.in -o requirements/system.lock

# -- older Airflow lanes: each in its own env, pinned by requirements/compat-<version>.lock ----------------------
# The unit suite (hooks, vendors, operators, sensors, triggers, provider registration) and the example DAGs end to
# end with dag.test(). The emulator's own tests (which need the vendors' SDKs) run on the primary lane only.
COMPAT_TESTS := tests/test_provider.py tests/hooks tests/vendors tests/triggers tests/operators tests/sensors tests/plugin

# Set up (or refresh) an older Airflow lane's env: $(call compat-env,<env dir>,<lock file>)
define compat-env
	test -x $(1)/bin/python || $(BIN)/uv venv --quiet --python $(PYTHON) $(1)
	$(BIN)/uv pip sync --quiet --python $(1)/bin/python $(2)
	$(BIN)/uv pip install --quiet --python $(1)/bin/python --no-deps --no-build-isolation -e . -e emulator
	@touch $(1)/.installed
endef

.venv-af211/.installed: requirements/compat-2.11.lock pyproject.toml $(BIN)/uv
	$(call compat-env,.venv-af211,requirements/compat-2.11.lock)

.venv-af30/.installed: requirements/compat-3.0.lock pyproject.toml $(BIN)/uv
	$(call compat-env,.venv-af30,requirements/compat-3.0.lock)

test-af211: .venv-af211/.installed
	@echo "== Airflow $$(.venv-af211/bin/python -c 'import airflow; print(airflow.__version__)')"
	.venv-af211/bin/python -m pytest -p no:cacheprovider $(COMPAT_TESTS)

test-af30: .venv-af30/.installed
	@echo "== Airflow $$(.venv-af30/bin/python -c 'import airflow; print(airflow.__version__)')"
	.venv-af30/bin/python -m pytest -p no:cacheprovider $(COMPAT_TESTS)

test-compat: test-af211 test-af30

lock-compat: $(BIN)/uv
	for version in 2.11 3.0; do \
		$(BIN)/uv pip compile --quiet --universal --python-version 3.11 \
			requirements/compat-$$version.in -o requirements/compat-$$version.lock || exit 1; \
	done

dist-check: $(STAMP)
	sh scripts/dist_check.sh $(BIN) $(PYTHON)

# The Docker-free install of docs/install.md, run as it stands (Airflow's constraints URL replaced by dev.lock).
install-check: $(STAMP)
	sh scripts/install_check.sh $(BIN)

clean:
	rm -rf $(VENV) .venv-bench .venv-af211 .venv-af30 .venv-system .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist .demo

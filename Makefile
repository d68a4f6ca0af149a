# The README's two commands are the contract: `make demo` and `make test`.
# Everything is installed on first use: a .venv for the app and tests, node_modules for Azurite,
# and a separate tool venv for checkov (its pinned `packaging` conflicts with current pytest).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help deps chromium install-all test test-floor lint typecheck pytest demo bench soak infra-check clean

help:
	@echo "make demo   - replay the seed attack on the emulator, fix it through the triggers, write out/report.html"
	@echo "make test   - install what is needed, then ruff, mypy --strict, checkov (infra/) and pytest"
	@echo "make bench  - tenant-scale benchmark against the emulator"
	@echo "make soak   - chaos/soak tests (slow)"
	@echo "make test-floor - unit, contract and SDK-adapter tests on the lowest versions requirements.txt allows"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -U pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed for Azurite: install nodejs and npm" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(TOOLS)/checkov/.installed:
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install -q --disable-pip-version-check "checkov>=3.2,<4"
	@touch $@

deps: $(VENV)/.installed node_modules/.installed

# Headless Chromium and ChromeDriver for the report's rendering test (tests/unit/test_report_screenshot.py),
# from Debian's packages: installed when absent and we are root with apt-get; otherwise say what to
# install (the test then skips, naming the same packages).
chromium:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
	    >/dev/null || { echo "apt-get could not install chromium chromium-driver" >&2; exit 1; }; \
	else \
	  echo "note: install the Debian packages chromium and chromium-driver to run the report's browser test" >&2; \
	fi

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy

pytest: deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Bicep security checks; every skip is justified inline (//checkov:skip=ID:reason). checkov reports files it
# cannot parse without failing, so a parsing error fails the target too.
infra-check: $(TOOLS)/checkov/.installed
	@out=$$($(TOOLS)/checkov/bin/checkov -d infra --framework bicep --quiet --compact --skip-download); rc=$$?; \
	  echo "$$out"; \
	  if echo "$$out" | grep -q "Parsing errors"; then echo "checkov could not parse every Bicep file" >&2; exit 1; fi; \
	  exit $$rc

# The installs are independent: run them side by side (a fresh CI clone spends most of its time here).
install-all:
	@$(MAKE) --no-print-directory -j4 $(VENV)/.installed node_modules/.installed $(TOOLS)/checkov/.installed chromium

test: install-all
	@$(MAKE) --no-print-directory lint typecheck infra-check pytest

demo: deps
	$(BIN)/python -m demo

# Cloud Custodian for the side-by-side in `make bench`, in its own venv (it pins many azure-* packages).
$(TOOLS)/c7n/.installed:
	$(PYTHON) -m venv $(TOOLS)/c7n
	$(TOOLS)/c7n/bin/python -m pip install -q --disable-pip-version-check c7n-azure
	@touch $@

bench: deps $(TOOLS)/c7n/.installed
	$(BIN)/python -m bench $(BENCH_ARGS)

soak: deps
	$(BIN)/python -m pytest -m slow tests/reliability $(PYTEST_ARGS)

# The floors in requirements.txt must be versions the code works with: install exactly the lowest allowed
# version of every runtime package (dev tools as usual) in its own venv and run the unit and contract tests
# and the emulator tests that drive every SDK adapter (azure-mgmt-keyvault < 13 has no send_request).
FLOOR_VENV := .venv-floor
test-floor:
	rm -rf $(FLOOR_VENV) && $(PYTHON) -m venv $(FLOOR_VENV)
	sed -nE 's/[[:space:]]*#.*//; s/^([A-Za-z0-9_.-]+)>=([^,<]+).*/\1==\2/p' requirements.txt > $(FLOOR_VENV)/floors.txt
	$(FLOOR_VENV)/bin/python -m pip install -q --disable-pip-version-check -U pip
	$(FLOOR_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c $(FLOOR_VENV)/floors.txt
	$(FLOOR_VENV)/bin/python -m pip freeze | grep -iE "^($$(sed 's/==.*//' $(FLOOR_VENV)/floors.txt | paste -sd'|' -))=="
	$(FLOOR_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/unit tests/contract \
	  tests/emulator/test_azure_keyvault.py tests/emulator/test_engine_keyvault.py \
	  tests/emulator/test_engine_rbac.py tests/emulator/test_powerplatform_remediation.py \
	  tests/emulator/test_rotation.py

clean:
	rm -rf $(VENV) $(FLOOR_VENV) $(TOOLS) node_modules out .mypy_cache .ruff_cache .pytest_cache

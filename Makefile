# Two commands do all the set-up on a fresh machine:
#   make demo   - the main job on a bundled example (init, add, commit, log, build, read back with ADIOS2, push)
#   make test   - the test suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

.PHONY: install demo test docs lint
install: $(VENV)/.installed

docs: $(VENV)/.installed
	$(BIN)/python scripts/gen_cli_docs.py
	$(BIN)/mkdocs build --strict

demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/quickstart.sh

# pytest-xdist workers: twice the CPUs, as about half of the suite's time is spent waiting (on
# camp and rclone processes, lock timeouts, ADIOS2), at most 8; TEST_JOBS=0: one process.
TEST_JOBS ?= $(shell n=$$(( 2 * $$(nproc 2>/dev/null || echo 1) )); [ $$n -gt 8 ] && n=8; echo $$n)
# Temporary folders of this checkout's runs (pytest keeps the last three), apart from other
# checkouts' and users' runs in /tmp/pytest-of-<user>, which pytest would otherwise sweep.
TEST_TMP ?= $(or $(TMPDIR),/tmp)/camp-tests-$(shell id -u)-$(notdir $(CURDIR))

# Changes nothing outside this folder and TEST_TMP: system packages for the real parts (sshd,
# git) are installed by `.ci/run` (or by you: sudo bash scripts/system-deps.sh); without them
# those tests are skipped here and say which part is missing. The strict site build is one of
# the tests (tests/test_docs.py). Bytecode is cached in TEST_TMP whatever PYTHONDONTWRITEBYTECODE
# says (never beside the sources): the suite starts camp hundreds of times, and pytest rewrites the
# asserts of every test module in every worker.
test: $(VENV)/.installed lint
	mkdir -p $(TEST_TMP)
	env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$(TEST_TMP)/pycache PYTEST_DEBUG_TEMPROOT=$(TEST_TMP) \
	  $(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_JOBS) --dist worksteal

# ruff and mypy under the configuration in pyproject.toml (part of make test, so of CI).
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/mypy

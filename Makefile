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

.PHONY: install demo test docs
install: $(VENV)/.installed

docs: $(VENV)/.installed
	$(BIN)/python scripts/gen_cli_docs.py
	$(BIN)/mkdocs build --strict

demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/quickstart.sh

# Changes nothing outside this folder and the temporary folder: system packages for the real
# parts (sshd, git) are installed by `.ci/run` (or by you: sudo bash scripts/system-deps.sh);
# without them those tests are skipped here and say which part is missing. The strict site
# build is one of the tests (tests/test_docs.py).
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider

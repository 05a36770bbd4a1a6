.PHONY: check test lint typecheck deps-check
check: lint typecheck
lint:
	ruff check .
typecheck:
	mypy
test:
	pytest

# The suite against the newest versions pyproject.toml allows (not constraints.txt), in a
# fresh virtualenv: drift is found here, not by users. Needs network access to the index.
DEPS_VENV ?= /tmp/stepgate-deps-check
deps-check:
	rm -rf $(DEPS_VENV)
	python3 -m venv $(DEPS_VENV)
	$(DEPS_VENV)/bin/pip install -q --upgrade pip
	$(DEPS_VENV)/bin/pip install -q --upgrade --upgrade-strategy eager -e '.[dev]'
	LITELLM_LOCAL_MODEL_COST_MAP=True $(DEPS_VENV)/bin/python -m pytest -q
	$(DEPS_VENV)/bin/pip freeze --exclude-editable > $(DEPS_VENV)/resolved.txt
	@echo "newest allowed versions pass; what they were: $(DEPS_VENV)/resolved.txt"

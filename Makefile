.PHONY: check test lint typecheck
check: lint typecheck
lint:
	ruff check .
typecheck:
	mypy
test:
	pytest

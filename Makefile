# The README's two commands: `make demo` and `make test`. Both set everything up first.
# `make test` runs the linters, then every test; `make test-fast` the tests not marked slow (no Ray,
# no training, no daemons, no Node.js), for the edit-test loop.
.PHONY: setup demo test test-fast lint typecheck bench

setup:
	./scripts/setup.sh

demo: setup
	.venv/bin/paratrain demo

# ruff over the whole tree (config and the per-file follow-up list: pyproject.toml [tool.ruff]).
# MYPY_PACKAGES are the packages that pass mypy ([tool.mypy]; paratrain_api passes strict) and so are
# held to it; `make typecheck` shows where the others stand. Add a package here once it passes.
MYPY_PACKAGES := paratrain_api orchestrator runtime_bindings
lint: setup
	.venv/bin/ruff check .
	$(if $(strip $(MYPY_PACKAGES)),.venv/bin/mypy $(addprefix -p ,$(MYPY_PACKAGES)))

# Every first-party package through mypy, for the follow-up work; not part of `make test` yet.
typecheck: setup
	-.venv/bin/mypy -p devnet
	-.venv/bin/mypy -p runtime_bindings
	-.venv/bin/mypy -p orchestrator
	-.venv/bin/mypy -p workers
	-.venv/bin/mypy -p paratrain
	-.venv/bin/mypy -p paratrain_api

test: setup lint
	.venv/bin/python -m pytest -q --durations=25

test-fast: setup lint
	.venv/bin/python -m pytest -q -m "not slow"

bench: setup
	.venv/bin/python benchmarks/devnet_throughput.py

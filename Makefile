# The README's two commands: `make demo` and `make test`. Both set everything up first.
.PHONY: setup demo test bench

setup:
	./scripts/setup.sh

demo: setup
	.venv/bin/paratrain demo

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python benchmarks/devnet_throughput.py

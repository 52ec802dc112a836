"""The CLI's commands below the dispatcher (paratrain.cli): the people's (task, account, model, dataset) and
the daemons' (worker, validator, orchestrator).

Each module's `register(subparsers)` adds its commands with `set_defaults(run=...)`; paratrain.cli routes to
them and turns a CliError into one line and exit status 2. None of them imports devnet or scalecodec (the
layers contract in pyproject.toml): they reach the chain through runtime_bindings.
"""

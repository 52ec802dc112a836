"""The worker's aggregator role alone in a process of its own, for the fault tests.

`paratrain worker` runs workers.fl.aggregator.Aggregator on a thread beside its task loop, which needs an
orchestrator and Ray; the fault tests need only the role, in a process they can SIGKILL mid-round and start
again on the same state directory and SuperLink port (the port the chain publishes as the task's endpoint).

    PARATRAIN_FL_KEY=<export_key(kp)> python tests/fl_aggregator_process.py CHAIN_URL STATE_DIR STORE PORT

The role's loop runs on the main thread, so the SuperLink it starts dies with this process (PR_SET_PDEATHSIG);
SIGTERM asks it to stop between steps. Its log goes to stderr.
"""
from __future__ import annotations

import logging
import signal
import sys

from runtime_bindings import Chain
from workers.fl.aggregator import Aggregator, AggregatorConfig
from workers.fl.child_key import key_from_env


def main(argv: list[str]) -> int:
    url, state_dir, store, port = argv
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    config = AggregatorConfig(chain_url=url, state_dir=state_dir, store=store, trusted_stores=(store,),
                              port=int(port), poll_s=0.5, run_check_s=5.0, max_relaunches=8)
    role = Aggregator(Chain.connect(url, timeout=30), key_from_env(), config)
    signal.signal(signal.SIGTERM, lambda *_: role.halt())
    role.run()
    role.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

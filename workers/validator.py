"""The validator daemon: `paratrain validator` judges every submitted result and votes on chain with evidence.

One result, end to end::

    finalized ResultSubmitted{task_id, attestation_hash} in block B (hash H)
      -> the task is still Submitted with that attestation; this validator is neither the worker nor the
         requester and has not voted on it (on chain: TaskBounties.Verdicts; locally: the state file)
      -> where the requester committed a hidden holdout: wait for HoldoutRevealed (at most until
         `holdout_margin_blocks` before verify_until; then judge without it)
      -> the spec document (spec_uri, verified against the on-chain spec_hash), the model weights and every
         checkpoint copied into this validator's store from the store the artifact_uri names, verified by hash
      -> checks (workers.verification): model_hash, checkpoints, trajectory root recomputed; dataset and code
         hash; the claimed metric re-measured on the validation split; the revealed holdout against the
         task's target; Q segments chosen from H (choose_segments) re-executed from their starting
         checkpoint (workers.runner.replay_segment: in this process for world size 1, on Ray otherwise)
         and compared bitwise with the attested next checkpoint
      -> the evidence document (canonical JSON) put in the artifact store; submit_verdict{accept,
         measured_metric (micro-units), evidence_hash = blake2-256 of the document}.

Restarts: the daemon follows `chain.events.finalized` and keeps ``<state-dir>/state.json``: the last
finalized block whose events it took in, the results it still has to judge, and the ones it voted on. The
file is written atomically after each block and after each vote, so a restarted validator resumes at the
next block (nothing missed) and never votes twice (the state file, and TaskBounties.Verdicts on chain,
are both consulted before every vote).

Errors a user can cause (a bad key, an unregistered account, an unreachable node) are log lines, never
tracebacks; SIGINT/SIGTERM stop the daemon between steps.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workers.verification import (
    HOLDOUT_TOLERANCE,
    METRIC_TOLERANCE,
    Check,
    as_hex,
    as_text,
    choose_segments,
    claimed_metrics,
    compare_metric,
    compare_replay,
    compare_target,
    decide,
    evidence_document,
    may_vote,
    segment_start,
    store_root_of,
    to_micro,
    verify_hashes,
)

log = logging.getLogger("paratrain.validator")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
STATE_FILE = "state.json"
# torch's default generator and thread count are process-wide: replays and evaluations of validators that
# share a process (threads, tests, the demo) run one at a time, or one replay's seeding would disturb another's
_TORCH_LOCK = threading.RLock()


class ValidatorError(RuntimeError):
    """A condition that stops the daemon with a clear message (no traceback)."""


class Abstain(Exception):
    """This validator cannot judge the result (e.g. the requester's spec document is unreachable)."""


@dataclass
class ValidatorConfig:
    chain_url: str
    key: str
    store: str | None = None                  # artifact store root (fsspec URL or directory)
    spot_checks: int = 2                      # Q: segments re-executed per result
    ray_address: str | None = None            # for replays of world size > 1
    state_dir: str | None = None              # state.json (default ~/.cache/paratrain/validator/<account>)
    metric_tolerance: float = METRIC_TOLERANCE
    holdout_tolerance: float = HOLDOUT_TOLERANCE
    holdout_margin_blocks: int = 3            # judge without the holdout when verify_until is this close
    from_block: int | None = None             # first block to read when there is no state (default: finalized head)
    max_verdicts: int | None = None           # exit after this many verdicts (None: run forever)
    poll_interval_s: float = 0.3
    chain_timeout_s: float = 30.0
    submit_timeout_s: float = 60.0


@dataclass
class ValidatorState:
    """What survives a restart (state.json)."""

    last_block: int | None = None
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)   # task id -> {attestation_hash, ...}
    voted: dict[str, dict[str, Any]] = field(default_factory=dict)     # "task:attestation_hash" -> verdict

    @classmethod
    def load(cls, path: Path) -> ValidatorState:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise ValidatorError(f"the state file {path} is unreadable: {exc}") from None
        return cls(last_block=doc.get("last_block"), pending=dict(doc.get("pending", {})),
                   voted=dict(doc.get("voted", {})))

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))
        os.replace(tmp, path)


def _vote_key(task_id: int, attestation_hash: str) -> str:
    return f"{task_id}:{as_hex(attestation_hash)}"


def _status(task: Any) -> tuple[str, dict[str, Any]]:
    status = task.status
    if isinstance(status, str):
        return status, {}
    if isinstance(status, dict) and len(status) == 1:
        name, payload = next(iter(status.items()))
        return name, dict(payload or {})
    return str(status), {}


class ValidatorDaemon:
    """Judges every result submitted on chain. `run()` blocks; `stop()` (any thread) makes it return."""

    def __init__(self, config: ValidatorConfig, *, keypair: Any = None, store: Any = None) -> None:
        self.config = config
        self._keypair, self._store = keypair, store
        self._stop = threading.Event()
        self.chain: Any = None
        self.state = ValidatorState()
        self.state_path: Path | None = None
        self.verdicts: list[dict[str, Any]] = []      # this run's votes: for tests and logs
        self.skipped: list[dict[str, Any]] = []       # results it did not vote on, and why
        self.exit_code: int | None = None

    # Set-up ---------------------------------------------------------------------------------
    @property
    def keypair(self) -> Any:
        if self._keypair is None:
            from workers.keys import load_keypair
            self._keypair = load_keypair(self.config.key)
        return self._keypair

    @property
    def account(self) -> str:
        return self.keypair.ss58_address

    @property
    def store(self) -> Any:
        if self._store is None:
            from workers.artifacts import ArtifactStore
            self._store = ArtifactStore(self.config.store)
        return self._store

    def _connect(self) -> None:
        from runtime_bindings import BindingsError, Chain

        account = self.account
        root = Path(self.config.state_dir or Path.home() / ".cache" / "paratrain" / "validator" / account)
        root.mkdir(parents=True, exist_ok=True)
        self.state_path = root / STATE_FILE
        self.state = ValidatorState.load(self.state_path)
        try:
            self.chain = Chain.connect(self.config.chain_url, timeout=self.config.chain_timeout_s,
                                       submit_timeout=self.config.submit_timeout_s)
        except BindingsError as exc:
            raise ValidatorError(f"cannot reach the chain at {self.config.chain_url}: {exc}") from None
        info = self.chain.workers.workers(account)
        if info is None:
            raise ValidatorError(f"{account} is not registered on chain: register it as a Validator first "
                                 f"(Workers.register with a stake)")
        if info.role != "Validator":
            raise ValidatorError(f"{account} is registered as a {info.role}, not a Validator")
        log.info("validator %s (stake %d) on %s, store %s, Q=%d", account, info.stake, self.config.chain_url,
                 self.store.root, self.config.spot_checks)

    def close(self) -> None:
        if self.chain is not None:
            self.chain.close()
            self.chain = None

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _save(self) -> None:
        if self.state_path is not None:
            self.state.save(self.state_path)

    # Main loop --------------------------------------------------------------------------------
    def run(self) -> int:
        from runtime_bindings import BindingsError

        try:
            self._connect()
            if self.state.last_block is not None:
                next_block = self.state.last_block + 1
                log.info("resuming at block %d (%d results pending)", next_block, len(self.state.pending))
            else:
                next_block = self.config.from_block if self.config.from_block is not None \
                    else self.chain.finalized_number()
            while not self.stopping and not self._done():
                head = self.chain.finalized_number()
                if head >= next_block:
                    stream = self.chain.events.finalized(from_block=next_block, to_block=head,
                                                         poll_interval=self.config.poll_interval_s,
                                                         own_connection=False)
                    for block in stream:
                        self._take_in(block)
                        next_block = block.number + 1
                        if self.stopping:
                            break
                self._judge_pending()
                self._stop.wait(self.config.poll_interval_s)
            self.exit_code = EXIT_OK
        except ValidatorError as exc:
            log.error("%s", exc)
            self.exit_code = EXIT_ERROR
        except BindingsError as exc:
            log.error("the chain connection failed: %s", exc)
            self.exit_code = EXIT_ERROR
        finally:
            self.close()
        return self.exit_code

    def _done(self) -> bool:
        return self.config.max_verdicts is not None and len(self.verdicts) >= self.config.max_verdicts

    def _take_in(self, block: Any) -> None:
        """Record one finalized block's ResultSubmitted and HoldoutRevealed events, then the block itself."""
        for record in block.records:
            event = record.event
            if event.pallet != "TaskBounties":
                continue
            if event.name == "ResultSubmitted":
                key = str(int(event.task_id))
                self.state.pending[key] = {"attestation_hash": as_hex(event.attestation_hash),
                                           "worker": event.worker, "block": block.number,
                                           "block_hash": as_hex(block.hash), "verify_until": int(event.verify_until)}
                log.info("task %s: result submitted in block %d (model %s)", key, block.number,
                         as_hex(event.model_hash)[:16])
            elif event.name == "HoldoutRevealed" and str(int(event.task_id)) in self.state.pending:
                self.state.pending[str(int(event.task_id))]["holdout_revealed"] = True
        self.state.last_block = block.number
        self._save()

    def _judge_pending(self) -> None:
        for key in sorted(self.state.pending, key=int):
            if self.stopping or self._done():
                return
            entry = self.state.pending[key]
            try:
                finished = self._judge(int(key), entry)
            except Abstain as exc:
                log.warning("task %s: abstaining: %s", key, exc)
                self.skipped.append({"task_id": int(key), "reason": str(exc)})
                finished = True
            if finished:
                self.state.pending.pop(key, None)
                self._save()

    # One result -------------------------------------------------------------------------------
    def _judge(self, task_id: int, entry: dict[str, Any]) -> bool:
        """Verify and vote; True when the entry is done with (voted, or nothing left to vote on)."""
        chain = self.chain
        task = chain.task_bounties.tasks(task_id)
        result = chain.task_bounties.results(task_id)
        state, payload = _status(task) if task is not None else ("Missing", {})
        if state != "Submitted" or result is None or as_hex(result.attestation_hash) != entry["attestation_hash"]:
            self.skipped.append({"task_id": task_id, "reason": f"no longer under verification ({state})"})
            return True
        key = _vote_key(task_id, entry["attestation_hash"])
        on_chain = chain.task_bounties.verdicts(task_id, self.account) is not None
        allowed, why = may_vote(self.account, payload.get("worker", ""), task.requester,
                                on_chain or key in self.state.voted)
        if not allowed:
            log.info("task %d: not voting: %s", task_id, why)
            self.skipped.append({"task_id": task_id, "reason": why})
            return True
        holdout = chain.task_bounties.holdouts(task_id) if task.holdout_commitment is not None else None
        if task.holdout_commitment is not None and holdout is None:
            left = int(payload["verify_until"]) - chain.best_number()
            if left > self.config.holdout_margin_blocks:
                return False  # wait for the requester's reveal
            log.info("task %d: the holdout was not revealed; judging on the validation split only", task_id)
        started = time.process_time()
        verdict, segments, extra = self.verify(task_id, task, result.attestation, entry["block_hash"], holdout)
        extra["cpu_s"] = round(time.process_time() - started, 3)
        document = evidence_document(task_id=task_id, attestation_hash=entry["attestation_hash"],
                                     validator=self.account, randomness=entry["block_hash"], verdict=verdict,
                                     segments=segments, extra=extra)
        evidence = self.store.put(document)
        self._vote(task_id, key, verdict, evidence, segments)
        return True

    def verify(self, task_id: int, task: Any, attestation: Any, randomness: str,
               holdout: Any = None) -> tuple[Any, list[int], dict[str, Any]]:
        """All checks of one attestation: (Verdict, the segments replayed, extra evidence)."""
        from workers.artifacts import ArtifactError
        from workers.spec import SpecError, decode_spec

        spec_hash, spec_uri = as_hex(task.spec.spec_hash), as_text(task.spec.spec_uri)
        try:
            spec = decode_spec(self.store.fetch(spec_uri, spec_hash), require_canonical=True)
        except (ArtifactError, OSError, ValueError, SpecError) as exc:
            raise Abstain(f"the spec document {spec_uri} is unusable: {exc}") from None
        self._fetch_artifacts(attestation)
        checks: list[Check] = verify_hashes(attestation, self.store)
        checks.append(self._code_check(spec, attestation))
        dataset = as_hex(attestation.dataset_hash if not isinstance(attestation, dict) else attestation["dataset_hash"])
        checks.append(Check("dataset_hash", dataset == spec.dataset.hash,
                            {"attested": dataset, "spec": spec.dataset.hash,
                             **({"reason": "the attested data set is not the task's"}
                                if dataset != spec.dataset.hash else {})}))
        artifacts_ok = all(c.ok for c in checks)
        metric_name = spec.evaluation.metric
        higher = bool(task.spec.higher_is_better)
        checkpoints = [as_hex(h) for h in (attestation["checkpoints"] if isinstance(attestation, dict)
                                             else attestation.checkpoints)]
        model_hash = as_hex(attestation["model_hash"] if isinstance(attestation, dict) else attestation.model_hash)
        measured_micro, segments, extra = 0, [], {"spec_hash": spec_hash, "metric": metric_name}
        if artifacts_ok:
            measured = self.measure(spec, model_hash)
            measured_micro = to_micro(measured[metric_name]) if metric_name in measured else 0
            extra["measured"] = {k: to_micro(v) for k, v in sorted(measured.items())}
            claimed = claimed_metrics(attestation).get(metric_name)
            checks.append(compare_metric(claimed, measured.get(metric_name, float("nan")),
                                         self.config.metric_tolerance, higher, name=metric_name)
                          if metric_name in measured else
                          Check("metric", False, {"reason": f"the recipe does not measure {metric_name!r}"}))
            if holdout is not None:
                checks.append(self._holdout_check(spec, model_hash, holdout, int(task.spec.eval_target), higher))
            segments = choose_segments(randomness, len(checkpoints), self.config.spot_checks)
            for index in segments:
                checks.append(self._replay(spec, checkpoints, index))
        else:
            checks.append(Check("metric", False, {"reason": "not measured: the artifacts failed their checks"}))
        return decide(checks, measured_micro), segments, extra

    def _fetch_artifacts(self, attestation: Any) -> None:
        """Copy the model and checkpoints from the store the artifact_uri names into ours (each verified)."""
        from workers.artifacts import ArtifactError, ArtifactStore

        field_of = (lambda n: attestation[n]) if isinstance(attestation, dict) else (lambda n: getattr(attestation, n))
        root = store_root_of(as_text(field_of("artifact_uri")))
        if root is None or root == self.store.root:
            return
        source = ArtifactStore(root)
        for digest in [field_of("model_hash"), *field_of("checkpoints")]:
            digest = as_hex(digest)
            if self.store.exists(digest):
                continue
            try:
                self.store.put(source.get(digest))
            except (ArtifactError, OSError, ValueError) as exc:
                log.info("artifact %s not fetched from %s: %s", digest[:16], root, exc)

    @staticmethod
    def _code_check(spec: Any, attestation: Any) -> Check:
        from workers.recipes import RecipeError, code_hash, get_recipe

        attested = as_hex(attestation["code_hash"] if isinstance(attestation, dict) else attestation.code_hash)
        try:
            expected = code_hash(get_recipe(spec.recipe))
        except RecipeError as exc:
            return Check("code_hash", False, {"attested": attested, "reason": f"recipe not runnable here: {exc}"})
        ok = attested == expected
        return Check("code_hash", ok, {"attested": attested, "expected": expected,
                                       **({} if ok else {"reason": "not the registered recipe's code"})})

    def measure(self, spec: Any, model_hash: str, holdout_data: bytes | None = None) -> dict[str, float]:
        """The recipe's metrics of the stored model: on the validation split, or on holdout data."""
        with _TORCH_LOCK:
            return self._measure(spec, model_hash, holdout_data)

    def _measure(self, spec: Any, model_hash: str, holdout_data: bytes | None) -> dict[str, float]:
        import torch

        from workers import tensorio
        from workers.datasets import decode_dataset
        from workers.recipes import get_recipe
        from workers.recipes.common import Prepared

        recipe = get_recipe(spec.recipe)
        hp = recipe.hyperparameters(spec.hyperparameters)
        torch.set_num_threads(int(hp.get("threads", 1)))
        prepared = recipe.prepare(decode_dataset(self.store.fetch(spec.dataset.uri, spec.dataset.hash)), hp,
                                  spec.validation)
        if holdout_data is not None:
            # the holdout goes through the recipe's own preparation; all of its examples are evaluated
            held = recipe.prepare(decode_dataset(holdout_data), hp, spec.validation)
            prepared = Prepared(prepared.train_x, prepared.train_y, torch.cat([held.train_x, held.val_x]),
                                torch.cat([held.train_y, held.val_y]), prepared.info)
        torch.manual_seed(spec.seed)
        model = recipe.build_model(hp, prepared)
        weights, _ = tensorio.loads(self.store.get(model_hash))
        model.load_state_dict(weights)
        model.eval()
        with torch.no_grad():
            return {k: float(v) for k, v in recipe.evaluate(model, prepared, hp).items()}

    def _holdout_check(self, spec: Any, model_hash: str, holdout: Any, target: int, higher: bool) -> Check:
        import fsspec

        uri = as_text(holdout.holdout_uri)
        try:
            root = store_root_of(uri)
            if root is not None:  # content-addressed: verified against the hash in its name
                data = self.store.fetch(uri, uri.rsplit("/", 1)[1])
            else:
                with fsspec.open(uri, "rb") as f:
                    data = f.read()
            measured = self.measure(spec, model_hash, holdout_data=data)[spec.evaluation.metric]
        except Exception as exc:  # noqa: BLE001 - the requester's data: judge without it, say why
            log.warning("the revealed holdout %s is unusable: %s", uri, exc)
            return Check("holdout", True, {"uri": uri, "skipped": f"unusable holdout: {exc}"})
        check = compare_target(measured, target, self.config.holdout_tolerance, higher)
        return Check(check.name, check.ok, {"uri": uri, **check.detail})

    def _replay(self, spec: Any, checkpoints: list[str], index: int) -> Check:
        from workers.runner import checkpoint_info, replay_segment

        start = segment_start(checkpoints, index)
        try:
            world_size = int(checkpoint_info(self.store, checkpoints[index])["world_size"])
            if world_size > 1:
                from workers.runner import ensure_ray
                ensure_ray(self.config.ray_address, log_to_driver=False)
            with _TORCH_LOCK:
                replayed = replay_segment(spec, self.store, start, world_size=world_size)
        except Exception as exc:  # noqa: BLE001 - a checkpoint that cannot be replayed fails the check
            return compare_replay(index, start, checkpoints[index], None, error=f"{type(exc).__name__}: {exc}")
        return compare_replay(index, start, checkpoints[index], replayed)

    def _vote(self, task_id: int, key: str, verdict: Any, evidence: str, segments: list[int]) -> None:
        from runtime_bindings import DispatchError
        from runtime_bindings.generated import types as t

        value = t.Verdict(accept=verdict.accept, measured_metric=verdict.measured_metric,
                          evidence_hash="0x" + evidence)
        try:
            receipt = self.chain.task_bounties.submit_verdict(self.keypair, task_id, value)
        except DispatchError as exc:
            log.warning("task %d: the verdict was refused on chain: %s", task_id, exc)
            self.skipped.append({"task_id": task_id, "reason": f"refused on chain: {exc}"})
            return
        record = {"task_id": task_id, "accept": verdict.accept, "measured_metric": verdict.measured_metric,
                  "evidence_hash": evidence, "segments": segments, "reasons": verdict.reasons,
                  "block": receipt.block_number}
        self.state.voted[key] = record
        self._save()
        self.verdicts.append(record)
        log.info("task %d: %s (measured %d, segments %s, evidence %s)%s", task_id,
                 "ACCEPT" if verdict.accept else "REJECT", verdict.measured_metric, segments, evidence[:16],
                 "" if verdict.accept else f": {'; '.join(verdict.reasons)}")


# Command line -----------------------------------------------------------------------------------
def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return number


def add_validator_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `paratrain validator` (shared by paratrain.cli and `python -m workers.validator`)."""
    parser.add_argument("--chain", default="ws://127.0.0.1:9944", metavar="URL",
                        help="node WebSocket URL (default ws://127.0.0.1:9944)")
    parser.add_argument("--key", required=True, metavar="KEY",
                        help="the validator's key: a secret URI (//Name, mnemonic, 0x seed) or a keystore JSON "
                             "file (password in $PARATRAIN_KEY_PASSWORD)")
    parser.add_argument("--store", metavar="URI",
                        help="artifact store root: a directory or fsspec URL (default $PARATRAIN_ARTIFACTS or "
                             "~/.cache/paratrain/artifacts)")
    parser.add_argument("--spot-checks", type=_non_negative, default=2, metavar="Q",
                        help="checkpoint segments re-executed per result, chosen from on-chain randomness "
                             "(default 2)")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="Ray cluster for replays of multi-worker runs (default $RAY_ADDRESS, else local)")
    parser.add_argument("--state-dir", metavar="DIR",
                        help="state.json: resume point and votes (default ~/.cache/paratrain/validator/<account>)")
    parser.add_argument("--metric-tolerance", type=float, default=METRIC_TOLERANCE, metavar="X",
                        help=f"claimed vs re-measured metric, absolute (default {METRIC_TOLERANCE})")
    parser.add_argument("--holdout-tolerance", type=float, default=HOLDOUT_TOLERANCE, metavar="X",
                        help=f"holdout metric below the task's target, absolute (default {HOLDOUT_TOLERANCE})")
    parser.add_argument("--from-block", type=_non_negative, metavar="N",
                        help="first block to read when there is no state file (default: the finalized head)")
    parser.add_argument("--max-verdicts", type=_non_negative, metavar="N", help="exit after N verdicts")
    return parser


def config_from_args(args: argparse.Namespace) -> ValidatorConfig:
    return ValidatorConfig(chain_url=args.chain, key=args.key, store=args.store, spot_checks=args.spot_checks,
                           ray_address=args.ray_address, state_dir=args.state_dir,
                           metric_tolerance=args.metric_tolerance, holdout_tolerance=args.holdout_tolerance,
                           from_block=args.from_block, max_verdicts=args.max_verdicts)


def run_validator(args: argparse.Namespace) -> int:
    """`paratrain validator`: run the daemon in the foreground until SIGINT/SIGTERM."""
    from workers.keys import KeyLoadError, load_keypair

    try:
        keypair = load_keypair(args.key)
    except KeyLoadError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    daemon = ValidatorDaemon(config_from_args(args), keypair=keypair)
    signals = {"count": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            os._exit(130)
        log.warning("%s: stopping after the current step", signal.Signals(signum).name)
        daemon.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = daemon.run()
    log.info("validator stopped (%d verdicts)", len(daemon.verdicts))
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paratrain validator", description="the paratrain validator daemon")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_validator_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("websocket", "substrateinterface", "urllib3", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return run_validator(args)


if __name__ == "__main__":
    raise SystemExit(main())

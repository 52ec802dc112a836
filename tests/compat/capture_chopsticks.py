#!/usr/bin/env python3
"""Capture reference JSON-RPC behaviour from a real chopsticks 1.5.1 node.

Starts ``@acala-network/chopsticks`` (installed by ``npm install`` in
``tests/js``) on a free loopback port with the Kusama local test-net chain
spec from ``tests/fixtures/chainspecs``, drives it with py-substrate-interface and
with raw websocket JSON-RPC, and writes what it saw to
``tests/compat/chopsticks_reference.json``:

* the exact JSON-RPC error objects (code, message, data) that
  ``author_submitExtrinsic`` returns for a set of invalid transactions;
* the events, AccountInfo layout and payment info of a successful
  ``Balances.transfer_allow_death``;
* the RPC methods py-substrate-interface issues for each high-level call;
* the notification shapes of the subscriptions the clients use;
* ``rpc_methods`` and the JSON shapes of the common read methods.

The chopsticks process group is always terminated (normal exit, exception,
SIGINT or SIGTERM).

Usage::

    .venv/bin/python tests/compat/capture_chopsticks.py [--out FILE] [--keep-log]

Needs network access to nothing: the chain spec runs fully offline.
"""
from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import websocket  # websocket-client, a dependency of substrate-interface
from substrateinterface import Keypair, SubstrateInterface
from substrateinterface.exceptions import SubstrateRequestException

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_DIR = REPO_ROOT / "tests" / "js"
DEFAULT_SPEC = REPO_ROOT / "tests" / "fixtures" / "chainspecs" / "kusama-local.json"
DEFAULT_OUT = Path(__file__).resolve().parent / "chopsticks_reference.json"

STARTUP_TIMEOUT_S = 240
TRANSFER_AMOUNT = 10 ** 12  # 1 KSM (12 decimals)


# --------------------------------------------------------------------------
# chopsticks process management
# --------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Chopsticks:
    """A chopsticks child process in its own process group."""

    def __init__(self, spec: Path, port: int, log_path: Path):
        self.spec = spec
        self.port = port
        self.log_path = log_path
        self.proc: Optional[subprocess.Popen] = None
        self._log_fh = None

    def command(self) -> List[str]:
        local_bin = JS_DIR / "node_modules" / ".bin" / "chopsticks"
        args = [
            "--genesis", str(self.spec),
            "--build-block-mode", "Instant",
            "--host", "127.0.0.1",
            "--port", str(self.port),
        ]
        if local_bin.exists():
            return [str(local_bin), *args]
        return ["npx", "--yes", "@acala-network/chopsticks@1.5.1", *args]

    def start(self) -> None:
        self._log_fh = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.command(), cwd=str(JS_DIR), stdout=self._log_fh,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"chopsticks exited early (rc={self.proc.returncode}); see {self.log_path}")
            try:
                ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}", timeout=5)
                ws.close()
                return
            except (OSError, websocket.WebSocketException):
                time.sleep(1)
        raise TimeoutError(f"chopsticks did not listen within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                pgid = os.getpgid(proc.pid)
            except ProcessLookupError:
                pgid = None
            for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    if pgid is not None:
                        os.killpg(pgid, sig)
                    else:
                        proc.send_signal(sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if proc is not None and pgid_alive(proc):
            # last resort: the group leader is gone but children may linger
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None


def pgid_alive(proc: subprocess.Popen) -> bool:
    try:
        os.killpg(proc.pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


# --------------------------------------------------------------------------
# raw JSON-RPC client
# --------------------------------------------------------------------------

class RawRpc:
    """Minimal JSON-RPC 2.0 websocket client that keeps notifications."""

    def __init__(self, url: str):
        self.ws = websocket.create_connection(url, timeout=60, max_size=2 ** 32)
        self.next_id = 0
        self.notifications: List[dict] = []
        self.lock = threading.Lock()

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass

    def send_raw(self, payload: Any) -> dict:
        with self.lock:
            req_id = payload.get("id") if isinstance(payload, dict) else None
            self.ws.send(json.dumps(payload))
            while True:
                msg = json.loads(self.ws.recv())
                if isinstance(msg, dict) and "method" in msg and "id" not in msg:
                    self.notifications.append(msg)
                    continue
                if req_id is None or (isinstance(msg, dict) and msg.get("id") == req_id):
                    return msg

    def call(self, method: str, params: Optional[list] = None) -> dict:
        self.next_id += 1
        return self.send_raw({"jsonrpc": "2.0", "id": self.next_id, "method": method,
                              "params": [] if params is None else params})

    def result(self, method: str, params: Optional[list] = None) -> Any:
        resp = self.call(method, params)
        if "error" in resp:
            raise RuntimeError(f"{method} failed: {resp['error']}")
        return resp["result"]

    def wait_notifications(self, predicate: Callable[[dict], bool], timeout: float) -> List[dict]:
        """Read until predicate(notification) is true or timeout; returns all seen."""
        deadline = time.time() + timeout
        with self.lock:
            seen = list(self.notifications)
            if any(predicate(n) for n in seen):
                return seen
            while time.time() < deadline:
                self.ws.settimeout(max(0.1, deadline - time.time()))
                try:
                    msg = json.loads(self.ws.recv())
                except websocket.WebSocketTimeoutException:
                    break
                finally:
                    self.ws.settimeout(60)
                if isinstance(msg, dict) and "method" in msg:
                    self.notifications.append(msg)
                    seen.append(msg)
                    if predicate(msg):
                        break
        return seen

    def drain(self, timeout: float = 1.0) -> List[dict]:
        return self.wait_notifications(lambda n: False, timeout)


# --------------------------------------------------------------------------
# py-substrate-interface with a record of the RPC calls it makes
# --------------------------------------------------------------------------

def _summarise_params(method: str, params: Any) -> Any:
    if method == "state_call" and isinstance(params, list) and params:
        data = params[1] if len(params) > 1 else None
        return [params[0], (data[:18] + "...") if isinstance(data, str) and len(data) > 18 else data,
                *params[2:]]
    if method in ("author_submitExtrinsic", "author_submitAndWatchExtrinsic", "payment_queryInfo"):
        return ["<extrinsic hex>"]
    if method == "state_queryStorageAt" and isinstance(params, list) and params:
        keys = params[0]
        return [f"<{len(keys)} keys>", *params[1:]]
    return params


class RecordingSubstrate(SubstrateInterface):
    """SubstrateInterface that records every RPC method it sends, in order."""

    def __init__(self, *args, **kwargs):
        self.rpc_log: List[dict] = []
        self.notification_log: List[dict] = []
        super().__init__(*args, **kwargs)

    def rpc_request(self, method, params, result_handler=None):
        self.rpc_log.append({"method": method, "params": _summarise_params(method, params)})
        if result_handler is not None:
            inner = result_handler

            def recording_handler(message, update_nr, subscription_id):
                self.notification_log.append({
                    "via": method,
                    "method": message.get("method"),
                    "subscription": message.get("params", {}).get("subscription"),
                    "result": message.get("params", {}).get("result"),
                })
                return inner(message, update_nr, subscription_id)

            result_handler = recording_handler
        return super().rpc_request(method, params, result_handler=result_handler)

    def take_log(self) -> List[dict]:
        log, self.rpc_log = self.rpc_log, []
        return log

    def take_notifications(self) -> List[dict]:
        log, self.notification_log = self.notification_log, []
        return log


def blake2_256_hex(hex_data: str) -> str:
    return "0x" + hashlib.blake2b(bytes.fromhex(hex_data[2:]), digest_size=32).hexdigest()


def jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# --------------------------------------------------------------------------
# capture
# --------------------------------------------------------------------------

class Capture:
    def __init__(self, url: str):
        self.url = url
        self.ref: Dict[str, Any] = {}
        self.raw = RawRpc(url)
        self.alice = Keypair.create_from_uri("//Alice", ss58_format=2)
        self.bob = Keypair.create_from_uri("//Bob", ss58_format=2)
        self.nofunds = Keypair.create_from_uri("//ParatrainNoFunds", ss58_format=2)
        self.sub: Optional[RecordingSubstrate] = None

    # -- helpers -----------------------------------------------------------
    def new_block(self) -> Any:
        return self.raw.result("dev_newBlock", [])

    def transfer_call(self, dest: Keypair, amount: int = TRANSFER_AMOUNT):
        return self.sub.compose_call("Balances", "transfer_allow_death",
                                     {"dest": dest.ss58_address, "value": amount})

    def signed(self, call, keypair: Keypair, **kw):
        return self.sub.create_signed_extrinsic(call=call, keypair=keypair, **kw)

    def submit_raw(self, hex_data: str) -> dict:
        resp = self.raw.call("author_submitExtrinsic", [hex_data])
        return {k: v for k, v in resp.items() if k in ("result", "error")}

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run fn, record the RPC methods py-substrate-interface sent."""
        assert self.sub is not None
        self.sub.take_log()
        self.sub.take_notifications()
        entry: Dict[str, Any] = {}
        try:
            value = fn()
            entry["ok"] = True
            result = value
        except Exception as exc:  # record, keep going
            entry["ok"] = False
            entry["exception"] = f"{type(exc).__name__}: {exc}"
            result = None
        entry["rpc_calls"] = self.sub.take_log()
        notes = self.sub.take_notifications()
        if notes:
            entry["notifications"] = notes
        self.ref.setdefault("py_substrate_interface_calls", {})[name] = entry
        return result

    # -- sections ----------------------------------------------------------
    def capture_basics(self) -> None:
        r = self.raw
        basics: Dict[str, Any] = {}
        for method, params in [
            ("rpc_methods", []), ("system_chain", []), ("system_name", []),
            ("system_version", []), ("system_properties", []), ("system_health", []),
            ("system_chainType", []), ("state_getRuntimeVersion", []),
            ("chain_getBlockHash", [0]), ("chain_getBlockHash", []),
            ("chain_getFinalizedHead", []), ("chain_getHead", []), ("chain_getHeader", []),
            ("chain_getBlock", []),
            ("state_call", ["Metadata_metadata_versions", "0x"]),
            ("system_accountNextIndex", [self.alice.ss58_address]),
            ("chain_getBlockHash", [999999]),
            ("state_getStorage", ["0x" + "ab" * 32]),
            ("state_getKeysPaged", ["0x26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9", 3]),
            ("no_suchMethod", []),
            ("chain_getBlockHash", ["not-a-number"]),
        ]:
            resp = r.call(method, params)
            key = method if method not in basics else f"{method} {json.dumps(params)}"
            basics[key] = {"params": params, "response": {k: v for k, v in resp.items()
                                                          if k in ("result", "error")}}
        md = r.result("state_getMetadata", [])
        basics["state_getMetadata"] = {"params": [], "response_prefix": md[:20],
                                       "response_length_hex_chars": len(md)}
        self.ref["raw_rpc"] = basics
        self.ref["rpc_methods"] = basics["rpc_methods"]["response"].get("result")

    def capture_py_init(self) -> None:
        sub = RecordingSubstrate(url=self.url, ss58_format=2)
        log_construct = sub.take_log()
        self.sub = sub
        self.ref["py_substrate_interface_calls"] = {
            "SubstrateInterface(url)": {"ok": True, "rpc_calls": log_construct},
        }
        self.step("init_runtime()", lambda: sub.init_runtime())
        self.ref["py_substrate_interface_state"] = {
            "chain": sub.chain, "type_registry_preset": sub.type_registry_preset,
            "runtime_version": sub.runtime_version, "transaction_version": sub.transaction_version,
            "ss58_format": sub.ss58_format, "is_weight_v2": sub.config.get("is_weight_v2"),
            "signed_extensions": list(sub.metadata.get_signed_extensions().keys()),
            "extrinsic_version": sub.metadata[1][1]["extrinsic"]["version"].value,
        }

    def capture_py_reads(self) -> None:
        sub = self.sub
        ed = self.step("get_constant(Balances, ExistentialDeposit)",
                       lambda: sub.get_constant("Balances", "ExistentialDeposit"))
        acct = self.step("query(System, Account, [alice])",
                         lambda: sub.query("System", "Account", [self.alice.ss58_address]))
        self.step("query(System, Number)", lambda: sub.query("System", "Number"))
        qm = self.step("query_map(System, Account, page_size=2, max_results=5)",
                       lambda: list(sub.query_map("System", "Account", page_size=2, max_results=5)))
        nonce = self.step("get_account_nonce(alice)",
                          lambda: sub.get_account_nonce(self.alice.ss58_address))
        call = self.step("compose_call(Balances, transfer_allow_death)",
                         lambda: self.transfer_call(self.bob))
        self.step("create_signed_extrinsic(immortal)", lambda: self.signed(call, self.alice))
        self.step("create_signed_extrinsic(era={'period': 64})",
                  lambda: self.signed(call, self.alice, era={"period": 64}))
        pinfo = self.step("get_payment_info(call, alice)",
                          lambda: sub.get_payment_info(call, self.alice))
        self.step("runtime_call(AccountNonceApi, account_nonce)",
                  lambda: sub.runtime_call("AccountNonceApi", "account_nonce",
                                           [self.alice.ss58_address]).value)
        self.step("get_block()", lambda: sub.get_block())
        self.step("get_block(block_number=1)", lambda: sub.get_block(block_number=1))
        self.step("get_events()", lambda: sub.get_events())

        # subscriptions: make sure a block arrives even if the node does not
        # push the current head on subscribe
        def poke_later():
            time.sleep(3)
            try:
                RawRpc(self.url).result("dev_newBlock", [])
            except Exception:
                pass

        def head_handler(obj, update_nr, subscription_id):
            return {"number": obj["header"]["number"], "update_nr": update_nr}

        threading.Thread(target=poke_later, daemon=True).start()
        self.step("subscribe_block_headers(handler)", lambda: sub.subscribe_block_headers(head_handler))
        threading.Thread(target=poke_later, daemon=True).start()
        self.step("subscribe_block_headers(handler, finalized_only=True)",
                  lambda: sub.subscribe_block_headers(head_handler, finalized_only=True))

        def storage_handler(obj, update_nr, subscription_id):
            return {"update_nr": update_nr, "nonce": obj.value["nonce"]}

        threading.Thread(target=poke_later, daemon=True).start()
        self.step("query(System, Account, [alice], subscription_handler)",
                  lambda: sub.query("System", "Account", [self.alice.ss58_address],
                                    subscription_handler=storage_handler))

        self.ref["values"] = {
            "existential_deposit": ed.value if ed is not None else None,
            "alice_account_info": acct.value if acct is not None else None,
            "account_info_field_names": list(acct.value.keys()) if acct is not None else None,
            "account_data_field_names": list(acct.value["data"].keys()) if acct is not None else None,
            "query_map_first_keys": [jsonable(k.value) for k, _ in (qm or [])],
            "alice_nonce_before": nonce,
            "payment_info": jsonable(pinfo),
            "payment_info_keys": list(pinfo.keys()) if isinstance(pinfo, dict) else None,
        }

        # payment info through the raw RPC and the raw runtime call
        xt = self.signed(call, self.alice, signature="0x" + "00" * 64)
        xt_hex = str(xt.data)
        self.ref["raw_rpc"]["payment_queryInfo"] = {
            "params": ["<signed transfer_allow_death>"],
            "response": {k: v for k, v in self.raw.call("payment_queryInfo", [xt_hex]).items()
                         if k in ("result", "error")}}
        length_le = len(xt.data.data).to_bytes(4, "little").hex()
        self.ref["raw_rpc"]["state_call TransactionPaymentApi_query_info"] = {
            "params": ["TransactionPaymentApi_query_info", "<extrinsic incl. compact length prefix> ++ u32 LE len"],
            "input_len_suffix": "0x" + length_le,
            "response": {k: v for k, v in self.raw.call(
                "state_call", ["TransactionPaymentApi_query_info", xt_hex + length_le]).items()
                if k in ("result", "error")}}
        self.ref["raw_rpc"]["state_call AccountNonceApi_account_nonce"] = {
            "params": ["AccountNonceApi_account_nonce", "<32-byte account id>"],
            "response": {k: v for k, v in self.raw.call(
                "state_call", ["AccountNonceApi_account_nonce", "0x" + self.alice.public_key.hex()]).items()
                if k in ("result", "error")}}

    def capture_success_transfer(self) -> None:
        sub = self.sub
        call = self.transfer_call(self.bob)
        xt = self.signed(call, self.alice)
        receipt = self.step("submit_extrinsic(wait_for_inclusion=True)",
                            lambda: sub.submit_extrinsic(xt, wait_for_inclusion=True))
        success: Dict[str, Any] = {"extrinsic_hash": "0x" + xt.extrinsic_hash.hex()}
        if receipt is not None:
            def read_receipt():
                return {
                    "block_hash": receipt.block_hash,
                    "is_success": receipt.is_success,
                    "total_fee_amount": receipt.total_fee_amount,
                    "weight": jsonable(receipt.weight),
                    "extrinsic_idx": receipt.extrinsic_idx,
                    "triggered_events": [
                        {"module_id": e.value["module_id"], "event_id": e.value["event_id"],
                         "phase": e.value["phase"], "extrinsic_idx": e.value["extrinsic_idx"],
                         "attributes": jsonable(e.value["attributes"]),
                         "topics": jsonable(e.value["topics"])}
                        for e in receipt.triggered_events
                    ],
                }
            info = self.step("ExtrinsicReceipt: is_success/triggered_events/total_fee_amount", read_receipt)
            success["receipt"] = info
            if info:
                success["event_names"] = [f"{e['module_id']}.{e['event_id']}" for e in info["triggered_events"]]
                success["event_field_names"] = {
                    f"{e['module_id']}.{e['event_id']}": (sorted(e["attributes"].keys())
                                                         if isinstance(e["attributes"], dict)
                                                         else e["attributes"])
                    for e in info["triggered_events"]}
            all_events = sub.get_events(receipt.block_hash)
            success["all_block_events"] = [
                {"phase": e.value["phase"], "extrinsic_idx": e.value["extrinsic_idx"],
                 "name": f"{e.value['module_id']}.{e.value['event_id']}",
                 "attributes": jsonable(e.value["attributes"])} for e in all_events]
            bob = sub.query("System", "Account", [self.bob.ss58_address])
            success["bob_account_info_after"] = bob.value
        xt2 = self.signed(self.transfer_call(self.bob), self.alice)
        r2 = self.step("submit_extrinsic(wait_for_finalization=True)",
                       lambda: sub.submit_extrinsic(xt2, wait_for_inclusion=True,
                                                    wait_for_finalization=True))
        success["finalized_receipt"] = (
            {"block_hash": r2.block_hash, "finalized": r2.finalized} if r2 is not None else None)
        self.step("submit_extrinsic() no wait",
                  lambda: sub.submit_extrinsic(self.signed(self.transfer_call(self.bob), self.alice)).extrinsic_hash)
        self.ref["successful_transfer"] = success

    def wait_pool_empty(self, timeout: float = 30) -> None:
        """Wait until earlier submissions are in a block whose state is the head.

        In Instant mode the pool empties when block building starts, before the
        new head is set; dev_newBlock returns only once its block is the head.
        """
        deadline = time.time() + timeout
        while time.time() < deadline and self.raw.result("author_pendingExtrinsics", []):
            time.sleep(0.5)
        self.new_block()

    def capture_watch(self) -> None:
        """Raw author_submitAndWatchExtrinsic notification sequence."""
        self.wait_pool_empty()
        xt = self.signed(self.transfer_call(self.bob), self.alice)
        w = RawRpc(self.url)
        try:
            resp = w.call("author_submitAndWatchExtrinsic", [str(xt.data)])
            sub_id = resp.get("result")

            def done(n):
                res = n.get("params", {}).get("result")
                return isinstance(res, dict) and ("finalized" in res or "Finalized" in res)
            notes = w.wait_notifications(done, 30)
            unsub = w.call("author_unwatchExtrinsic", [sub_id]) if sub_id is not None else None
            invalid = w.call("author_submitAndWatchExtrinsic", ["0x1234"])
            stale = w.call("author_submitAndWatchExtrinsic", [str(xt.data)])
            self.ref["author_submitAndWatchExtrinsic"] = {
                "subscribe_response": resp,
                "notifications": notes,
                "unwatch_response": unsub,
                "undecodable_bytes_response": invalid,
                "resubmit_included_response": stale,
            }
        finally:
            w.close()
        self.capture_watch_conflict()

    def capture_watch_conflict(self) -> None:
        """Two watched transfers with the same nonce (Manual mode), then one block."""
        self.wait_pool_empty()
        nonce = self.sub.get_account_nonce(self.alice.ss58_address)
        xa = self.signed(self.transfer_call(self.bob, TRANSFER_AMOUNT), self.alice, nonce=nonce)
        xb = self.signed(self.transfer_call(self.bob, TRANSFER_AMOUNT + 1), self.alice, nonce=nonce)
        wa, wb = RawRpc(self.url), RawRpc(self.url)
        try:
            self.raw.result("dev_setBlockBuildMode", ["Manual"])
            ra = wa.call("author_submitAndWatchExtrinsic", [str(xa.data)])
            rb = wb.call("author_submitAndWatchExtrinsic", [str(xb.data)])
            self.new_block()
            self.new_block()
            na = wa.drain(3)
            nb = wb.drain(1)
            self.ref["author_submitAndWatchExtrinsic_same_nonce"] = {
                "description": "two different //Alice transfers with the same nonce watched in Manual "
                               "block mode, then dev_newBlock twice",
                "first": {"subscribe_response": ra, "notifications": na},
                "second": {"subscribe_response": rb, "notifications": nb},
            }
        finally:
            try:
                self.raw.result("dev_setBlockBuildMode", ["Instant"])
            except Exception:
                pass
            wa.close()
            wb.close()

    def capture_errors(self) -> None:
        sub = self.sub
        errors: Dict[str, Any] = {}
        nonce = sub.get_account_nonce(self.alice.ss58_address)

        def case(name, description, build):
            try:
                data = build()
                errors[name] = {"description": description, **self.submit_raw(data)}
            except Exception as exc:
                errors[name] = {"description": description,
                                "capture_exception": f"{type(exc).__name__}: {exc}"}

        call = self.transfer_call(self.bob)

        case("bad_signature", "valid transfer from //Alice with the 64-byte sr25519 signature replaced by 0x01..01",
             lambda: str(self.signed(call, self.alice, signature="0x" + "01" * 64).data))
        case("stale_nonce", "//Alice transfer signed with nonce 0 after earlier transfers were included",
             lambda: str(self.signed(call, self.alice, nonce=0).data))

        # wrong genesis hash in the signed payload
        def wrong_genesis():
            orig = sub.get_block_hash

            def fake(block_id=None):
                if block_id == 0:
                    return "0x" + "11" * 32
                return orig(block_id)
            sub.get_block_hash = fake
            try:
                return str(self.signed(call, self.alice, nonce=nonce).data)
            finally:
                del sub.get_block_hash
        case("wrong_genesis_hash", "signed payload uses genesis hash 0x1111..11 (immortal era, so block_hash too)",
             wrong_genesis)

        def wrong_spec():
            orig = sub.generate_signature_payload

            def patched(*a, **kw):
                saved = sub.runtime_version
                sub.runtime_version = saved + 1
                try:
                    return orig(*a, **kw)
                finally:
                    sub.runtime_version = saved
            sub.generate_signature_payload = patched
            try:
                return str(self.signed(call, self.alice, nonce=nonce).data)
            finally:
                del sub.generate_signature_payload
        case("wrong_spec_version", "signed payload uses spec_version + 1", wrong_spec)

        def unknown_birth():
            head_number = sub.get_block_number(sub.get_chain_head())
            orig = sub.get_block_hash

            def fake(block_id=None):
                h = orig(block_id)
                return h if h is not None else "0x" + "22" * 32
            sub.get_block_hash = fake
            try:
                # phase = period - 1 > head: the era's birth block lies in the future,
                # so the runtime has no BlockHash for it
                period = 64
                while period <= head_number + 1:
                    period *= 2
                return str(self.signed(call, self.alice, nonce=nonce,
                                       era={"period": period, "current": period - 1}).data)
            finally:
                del sub.get_block_hash
        case("mortal_era_unknown_birth_block",
             "mortal era (period 64) whose birth block number is ahead of the chain head (no block hash stored)",
             unknown_birth)

        def expired():
            head_number = sub.get_block_number(sub.get_chain_head())
            xt = self.signed(call, self.alice, nonce=nonce, era={"period": 4, "current": head_number})
            for _ in range(6):
                self.new_block()
            return str(xt.data)
        case("mortal_era_expired",
             "mortal era period 4 born at the then-head, submitted after 6 more blocks", expired)

        case("future_nonce", "//Alice transfer with nonce current+1000",
             lambda: str(self.signed(call, self.alice, nonce=nonce + 1000).data))
        case("no_funds", "transfer from an account with no balance (//ParatrainNoFunds)",
             lambda: str(self.signed(call, self.nofunds, nonce=0).data))
        case("undecodable_bytes", "0x1234", lambda: "0x1234")
        case("empty_bytes", "0x", lambda: "0x")
        case("not_hex", "a non-hex string", lambda: "hello")
        case("oversized_garbage", "4 MiB of 0xff bytes (not an extrinsic)", lambda: "0x" + "ff" * (4 * 1024 * 1024))

        def oversized_remark():
            big = sub.compose_call("System", "remark", {"remark": "0x" + "00" * (6 * 1024 * 1024)})
            return str(self.signed(big, self.alice, nonce=nonce).data)
        case("oversized_remark", "validly signed System.remark carrying 6 MiB (more than the block length)",
             oversized_remark)

        # duplicate submissions
        def dup_instant():
            xt = str(self.signed(self.transfer_call(self.bob), self.alice).data)
            first = self.submit_raw(xt)
            second = self.submit_raw(xt)
            return {"first": first, "second": second}
        try:
            errors["duplicate_instant_mode"] = {
                "description": "same valid extrinsic submitted twice back to back, Instant block mode",
                **dup_instant()}
        except Exception as exc:
            errors["duplicate_instant_mode"] = {"capture_exception": f"{type(exc).__name__}: {exc}"}

        try:
            self.raw.result("dev_setBlockBuildMode", ["Manual"])
            xt = str(self.signed(self.transfer_call(self.bob), self.alice).data)
            first = self.submit_raw(xt)
            second = self.submit_raw(xt)
            pending = [blake2_256_hex(x) for x in self.raw.result("author_pendingExtrinsics", [])]
            self.new_block()
            third = self.submit_raw(xt)
            errors["duplicate_in_pool"] = {
                "description": "same valid extrinsic submitted twice while the first is still in the pool "
                               "(Manual block mode); then again after it was included",
                "first": first, "second": second, "pending_extrinsic_hashes": pending,
                "after_inclusion": third}
        except Exception as exc:
            errors["duplicate_in_pool"] = {"capture_exception": f"{type(exc).__name__}: {exc}"}
        finally:
            try:
                self.raw.result("dev_setBlockBuildMode", ["Instant"])
            except Exception:
                pass

        # how py-substrate-interface surfaces such an error
        def py_error():
            try:
                sub.submit_extrinsic(self.signed(call, self.alice, nonce=0))
            except SubstrateRequestException as exc:
                return {"exception": "SubstrateRequestException", "args": jsonable(list(exc.args))}
            return {"exception": None}
        errors["py_substrate_interface_surface"] = py_error()
        self.ref["submit_errors"] = errors

    def capture_subscriptions(self) -> None:
        subs: Dict[str, Any] = {}
        pairs = [
            ("chain_subscribeNewHeads", [], "chain_unsubscribeNewHeads"),
            ("chain_subscribeNewHead", [], "chain_unsubscribeNewHead"),
            ("chain_subscribeFinalizedHeads", [], "chain_unsubscribeFinalizedHeads"),
            ("chain_subscribeAllHeads", [], "chain_unsubscribeAllHeads"),
            ("state_subscribeRuntimeVersion", [], "state_unsubscribeRuntimeVersion"),
            ("state_subscribeStorage", [[
                "0x26aa394eea5630e07c48ae0c9558cef702a5c1b19ab7a04f536c519aca4983ac"]],  # System.Number
             "state_unsubscribeStorage"),
        ]
        for sub_m, params, unsub_m in pairs:
            c = RawRpc(self.url)
            try:
                resp = c.call(sub_m, params)
                entry: Dict[str, Any] = {"subscribe_response": resp}
                if "result" in resp:
                    initial = c.drain(1.5)
                    self.new_block()
                    later = c.wait_notifications(lambda n: n not in initial, 10)
                    entry["notifications"] = later[:4]
                    entry["notification_methods"] = sorted({n.get("method") for n in later})
                    entry["sent_on_subscribe"] = len(initial)
                    entry["unsubscribe_method"] = unsub_m
                    entry["unsubscribe_response"] = c.call(unsub_m, [resp["result"]])
                    entry["unsubscribe_again_response"] = c.call(unsub_m, [resp["result"]])
                subs[sub_m] = entry
            finally:
                c.close()
        self.ref["subscriptions"] = subs

    def capture_quirks(self) -> None:
        """Run last: chopsticks (genesis mode) answers chain_getHeader/chain_getBlock
        for an UNKNOWN hash with the genesis block and then reports that hash as
        block 0, which breaks CheckGenesis for every later signed extrinsic."""
        r = self.raw
        q: Dict[str, Any] = {"genesis_hash_before": r.result("chain_getBlockHash", [0])}
        unknown = "0x" + "ab" * 32
        q["chain_getHeader(unknown hash)"] = {k: v for k, v in r.call("chain_getHeader", [unknown]).items()
                                              if k in ("result", "error")}
        q["chain_getBlock(unknown hash)"] = {k: v for k, v in r.call("chain_getBlock", [unknown]).items()
                                             if k in ("result", "error")}
        q["genesis_hash_after"] = r.result("chain_getBlockHash", [0])
        xt = self.signed(self.transfer_call(self.bob), self.alice)
        q["valid_transfer_after_quirk"] = self.submit_raw(str(xt.data))
        q["note"] = ("A real Substrate node returns null for an unknown block hash. chopsticks 1.5.1 in "
                     "--genesis mode returns the genesis block under the asked hash and afterwards "
                     "chain_getBlockHash(0) returns that hash, so clients sign with a wrong genesis hash "
                     "(1010 badProof). Do not copy this behaviour.")
        self.ref["chopsticks_quirks"] = q

    def run(self) -> Dict[str, Any]:
        self.capture_basics()
        self.capture_py_init()
        self.capture_py_reads()
        self.capture_success_transfer()
        self.capture_watch()
        self.capture_errors()
        self.capture_subscriptions()
        self.capture_quirks()
        if self.sub is not None:
            self.sub.close()
        self.raw.close()
        return self.ref


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--log", type=Path, default=Path("/tmp") / f"chopsticks-capture-{os.getpid()}.log")
    args = ap.parse_args(argv)

    port = free_port()
    node = Chopsticks(args.spec, port, args.log)
    atexit.register(node.stop)

    def on_signal(signum, _frame):
        node.stop()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        node.start()
        node.wait_ready()
        started = time.time()
        ref = Capture(f"ws://127.0.0.1:{port}").run()
        ref = {
            "_about": {
                "generated_by": "tests/compat/capture_chopsticks.py",
                "chopsticks": "@acala-network/chopsticks 1.5.1",
                "chain_spec": "tests/fixtures/chainspecs/kusama-local.json",
                "client": "substrate-interface " + _version("substrate-interface"),
                "scalecodec": _version("scalecodec"),
                "capture_seconds": round(time.time() - started, 1),
            },
            **ref,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(jsonable(ref), indent=1, sort_keys=False) + "\n")
        print(f"wrote {args.out}")
        return 0
    finally:
        node.stop()


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())

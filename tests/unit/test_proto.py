"""The contract: buf lint clean, generated stubs free of drift, importable from the installed package."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from paratrain_api import protogen

ROOT = Path(__file__).resolve().parents[2]


def _buf() -> str | None:
    found = shutil.which("buf")
    if found:
        return found
    candidate = Path(sysconfig.get_path("scripts")) / "buf"
    return str(candidate) if candidate.exists() else None


def test_generated_stubs_have_no_drift(tmp_path: Path) -> None:
    generated = protogen.generate(tmp_path)
    existing = protogen.current(ROOT / "paratrain_api" / "v1")
    assert protogen.drift(generated, existing) == [], "run `python -m paratrain_api.protogen`"
    assert {"worker_pb2.py", "worker_pb2_grpc.py", "worker_pb2.pyi", "task_pb2.py", "common_pb2.py"} <= set(generated)


def test_the_open_inference_protocol_stubs_have_no_drift(tmp_path: Path) -> None:
    generated = protogen.generate(tmp_path, package=protogen.INFERENCE)
    assert protogen.drift(generated, protogen.current(ROOT / "paratrain_api" / "inference")) == []
    from paratrain_api.inference import grpc_predict_v2_pb2 as v2

    service = v2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"      # the wire name every v2 client calls
    assert [m.name for m in service.methods] == ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata",
                                                 "ModelMetadata", "ModelInfer"]
    assert v2.ModelInferRequest.DESCRIPTOR.fields_by_name["raw_input_contents"].number == 7
    assert v2.InferTensorContents.DESCRIPTOR.fields_by_name["fp32_contents"].number == 6


def test_generation_is_deterministic(tmp_path: Path) -> None:
    assert protogen.generate(tmp_path / "a") == protogen.generate(tmp_path / "b")


def test_check_command_reports_drift(tmp_path: Path) -> None:
    out = tmp_path / "v1"
    shutil.copytree(ROOT / "paratrain_api" / "v1", out, ignore=shutil.ignore_patterns("__pycache__"))
    assert protogen.main(["--check", "--out", str(out)]) == 0
    (out / "task_pb2.py").write_text("# edited by hand\n")
    assert protogen.main(["--check", "--out", str(out)]) == 1
    (out / "stale_pb2.py").write_text("")
    assert protogen.main(["--out", str(out)]) == 0  # regenerate: fixes the edit, removes the leftover
    assert not (out / "stale_pb2.py").exists()
    assert protogen.main(["--check", "--out", str(out)]) == 0


def test_buf_lint_clean() -> None:
    buf = _buf()
    if buf is None:
        pytest.skip("buf not installed (pip install -e '.[test]' brings buf-bin)")
    result = subprocess.run([buf, "lint"], cwd=ROOT / "proto", capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_generated_modules_import_from_installed_package(tmp_path: Path) -> None:
    code = (
        "import paratrain_api.v1.worker_pb2_grpc as w, paratrain_api.v1.task_pb2_grpc as t, paratrain_api.v1.common_pb2 as c\n"
        "import paratrain_api, os\n"
        "assert w.WorkerServiceStub and t.TaskServiceStub and c.Task\n"
        "assert c.Task.__module__ == 'paratrain_api.v1.common_pb2'\n"
        "print(os.path.dirname(paratrain_api.__file__))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve() == (ROOT / "paratrain_api").resolve() or "site-packages" in result.stdout


def test_services_and_methods() -> None:
    from paratrain_api.v1 import task_pb2, worker_pb2

    worker = worker_pb2.DESCRIPTOR.services_by_name["WorkerService"]
    assert worker.full_name == "paratrain.v1.WorkerService"
    assert [m.name for m in worker.methods] == [
        "RegisterWorker", "RequestAssignment", "StreamProgress", "GetTaskSpec", "RelayExtrinsic", "ReportResult",
            "Heartbeat", "HeartbeatStream", "OpenAuthSession"]
    assert worker.methods_by_name["StreamProgress"].client_streaming
    task = task_pb2.DESCRIPTOR.services_by_name["TaskService"]
    assert [m.name for m in task.methods] == ["ListTasks", "GetTask", "WatchTask"]
    assert task.methods_by_name["WatchTask"].server_streaming

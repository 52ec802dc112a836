"""Offline checks of the rendered k8s/ manifests: rendering, schema validation and policy.

Every check takes the list of rendered objects and returns a list of problems ("Kind/name: what"),
empty when the objects pass. tests/k8s/test_manifests.py runs each one on the overlays (no problem
allowed) and on tests/k8s/fixtures/broken (each check must find its planted problem).
"""
from __future__ import annotations

import copy
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = {"dev": K8S / "overlays" / "dev", "production": K8S / "overlays" / "production"}
BROKEN = Path(__file__).resolve().parent / "fixtures" / "broken"
CRD_DIR = Path(os.environ.get("PARATRAIN_CRD_DIR", ROOT / "tests" / "fixtures" / "k8s" / "crds"))
KUBERNETES_VERSION = "1.32.0"  # the targeted Kubernetes version (kubernetes-validate's schemas)
CRD_KINDS = {("ray.io", "RayCluster"): "ray.io_rayclusters.yaml", ("ray.io", "RayJob"): "ray.io_rayjobs.yaml"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}

Obj = dict[str, Any]


def ident(obj: Obj) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


# ---------------------------------------------------------------- rendering
def kubectl() -> str | None:
    return shutil.which("kubectl")


def render(directory: Path) -> list[Obj]:
    """`kubectl kustomize DIR` (kustomize v5 inside kubectl), parsed."""
    exe = kubectl()
    if exe is None:
        raise RuntimeError("kubectl is not on PATH")
    out = subprocess.run([exe, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed: {out.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


# ---------------------------------------------------------------- containers
def pod_specs(obj: Obj) -> Iterator[tuple[str, Obj, bool]]:
    """(where, pod spec, long_running) for every pod template the object carries."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind in WORKLOAD_KINDS:
        yield "spec.template", spec.get("template", {}).get("spec", {}), True
    elif kind == "Job":
        yield "spec.template", spec.get("template", {}).get("spec", {}), False
    elif kind == "CronJob":
        yield "spec.jobTemplate", spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {}), False
    elif kind == "Pod":
        yield "spec", spec, True
    elif kind == "RayCluster":
        yield from _ray_cluster_pods(spec, "spec")
    elif kind == "RayJob":
        if "rayClusterSpec" in spec:
            yield from _ray_cluster_pods(spec["rayClusterSpec"], "spec.rayClusterSpec")
        if "submitterPodTemplate" in spec:
            yield "spec.submitterPodTemplate", spec["submitterPodTemplate"].get("spec", {}), False


def _ray_cluster_pods(spec: Obj, where: str) -> Iterator[tuple[str, Obj, bool]]:
    yield f"{where}.headGroupSpec", spec.get("headGroupSpec", {}).get("template", {}).get("spec", {}), True
    for group in spec.get("workerGroupSpecs") or []:
        yield (f"{where}.workerGroupSpecs[{group.get('groupName')}]",
               group.get("template", {}).get("spec", {}), True)


def containers(obj: Obj) -> Iterator[tuple[str, Obj, Obj | None, bool]]:
    """(where, container, pod spec or None, long_running) for every container, init containers and the
    KubeRay autoscaler sidecar (autoscalerOptions) included."""
    for where, pod, long_running in pod_specs(obj):
        for field in ("initContainers", "containers"):
            for c in pod.get(field) or []:
                yield f"{where}.{field}[{c.get('name')}]", c, pod, long_running and field == "containers"
    for spec, where in ((obj.get("spec") or {}, "spec"), ((obj.get("spec") or {}).get("rayClusterSpec"), "spec.rayClusterSpec")):
        if obj.get("kind") in ("RayCluster", "RayJob") and spec and spec.get("enableInTreeAutoscaling"):
            opts = spec.get("autoscalerOptions") or {}
            yield f"{where}.autoscalerOptions", {"name": "autoscaler", **opts}, None, False


# ---------------------------------------------------------------- schema checks
def check_builtin_schemas(objs: list[Obj]) -> list[str]:
    """Built-in kinds against Kubernetes KUBERNETES_VERSION's schemas, strict (unknown fields rejected)."""
    import kubernetes_validate

    problems = []
    for obj in objs:
        group = obj.get("apiVersion", "").rpartition("/")[0]
        if (group, obj.get("kind")) in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            problems.append(f"{ident(obj)}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{ident(obj)}: no schema for {obj.get('apiVersion')} {obj.get('kind')} in "
                            f"Kubernetes {KUBERNETES_VERSION}")
    return problems


def closed_schema(schema: Any) -> Any:
    """The CRD's openAPIV3Schema made strict for jsonschema: every object schema that lists `properties`
    and says nothing else about extra keys gets `additionalProperties: false` (what the API server's
    structural-schema pruning does, turned into an error), unless it carries
    `x-kubernetes-preserve-unknown-fields: true`. Maps (`additionalProperties: {...}`) stay maps.
    `x-kubernetes-int-or-string` becomes `anyOf: [integer, string]`."""
    if isinstance(schema, list):
        return [closed_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed_schema(v) for k, v in schema.items()}
    if out.get("x-kubernetes-int-or-string"):
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(group: str, kind: str, version: str):
    import jsonschema

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are large: libyaml when present
    crd = yaml.load((CRD_DIR / CRD_KINDS[(group, kind)]).read_text(), Loader=loader)
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema = closed_schema(copy.deepcopy(v["schema"]["openAPIV3Schema"]))
            return jsonschema.Draft7Validator(schema)
    raise KeyError(f"{group}/{version} {kind} is not served by {CRD_KINDS[(group, kind)]}")


def check_crd_schemas(objs: list[Obj]) -> list[str]:
    """RayCluster and RayJob against the KubeRay CRDs' openAPIV3Schema, unknown fields rejected."""
    problems = []
    for obj in objs:
        group, _, version = obj.get("apiVersion", "").rpartition("/")
        if (group, obj.get("kind")) not in CRD_KINDS:
            continue
        try:
            validator = crd_validator(group, obj["kind"], version)
        except KeyError as exc:
            problems.append(f"{ident(obj)}: {exc}")
            continue
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
            path = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{ident(obj)}: {path}: {error.message}")
    return problems


# ---------------------------------------------------------------- policy checks
_TAGGED = re.compile(r"^(?P<repo>[^@]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@sha256:[0-9a-f]{64})?$")


def check_images_pinned(objs: list[Obj]) -> list[str]:
    """Every container image has an explicit tag (or digest) that is not `latest`."""
    problems = []
    for obj in objs:
        for where, c, _, _ in containers(obj):
            image = c.get("image")
            if image is None:
                if where.endswith("autoscalerOptions"):
                    continue  # KubeRay picks the autoscaler image matching the head's
                problems.append(f"{ident(obj)}: {where}: no image")
                continue
            name = image.rsplit("/", 1)[-1]
            match = _TAGGED.match(image)
            if "@sha256:" in image:
                continue
            if match is None or ":" not in name:
                problems.append(f"{ident(obj)}: {where}: image {image!r} has no tag")
            elif name.rsplit(":", 1)[1] == "latest":
                problems.append(f"{ident(obj)}: {where}: image {image!r} uses `latest`")
    return problems


def check_resources(objs: list[Obj]) -> list[str]:
    """Requests and limits (cpu and memory) on every container, init containers, Ray groups and the
    autoscaler included."""
    problems = []
    for obj in objs:
        for where, c, _, _ in containers(obj):
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                missing = [r for r in ("cpu", "memory") if r not in (res.get(part) or {})]
                if missing:
                    problems.append(f"{ident(obj)}: {where}: no {part} for {', '.join(missing)}")
    return problems


def _runs_paratrain(c: Obj) -> bool:
    image = (c.get("image") or "").rsplit("/", 1)[-1]
    return image.startswith("paratrain:") or image == "paratrain"


def check_probes(objs: list[Obj]) -> list[str]:
    """Long-running paratrain containers (workloads and Ray nodes) have a liveness and a readiness probe: a
    startup probe alone says nothing once the pod runs."""
    problems = []
    for obj in objs:
        for where, c, _, long_running in containers(obj):
            if not long_running or not _runs_paratrain(c):
                continue
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    problems.append(f"{ident(obj)}: {where}: no {probe}")
    return problems


def check_non_root(objs: list[Obj]) -> list[str]:
    """runAsNonRoot (container or pod level) and never runAsUser 0."""
    problems = []
    for obj in objs:
        for where, c, pod, _ in containers(obj):
            psc = (pod or {}).get("securityContext") or {}
            csc = c.get("securityContext") or {}
            non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            user = csc.get("runAsUser", psc.get("runAsUser"))
            if non_root is not True:
                problems.append(f"{ident(obj)}: {where}: runAsNonRoot is not true")
            if user == 0:
                problems.append(f"{ident(obj)}: {where}: runAsUser 0")
    return problems


def check_hardening(objs: list[Obj]) -> list[str]:
    """No privilege escalation, ALL capabilities dropped, read-only root file system, seccomp
    RuntimeDefault (container or pod level)."""
    problems = []
    for obj in objs:
        for where, c, pod, _ in containers(obj):
            psc = (pod or {}).get("securityContext") or {}
            csc = c.get("securityContext") or {}
            if csc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{ident(obj)}: {where}: allowPrivilegeEscalation is not false")
            if csc.get("privileged"):
                problems.append(f"{ident(obj)}: {where}: privileged")
            if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{ident(obj)}: {where}: capabilities do not drop ALL")
            if csc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{ident(obj)}: {where}: root file system is writable")
            seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{ident(obj)}: {where}: no seccomp profile (RuntimeDefault)")
    return problems


_SECRET_NAME = re.compile(r"(KEY|SECRET|PASSWORD|PASSWD|MNEMONIC|SEED|TOKEN|SURI|CREDENTIAL)", re.I)
_SECRET_VALUES = [
    (re.compile(r"^(0x)?[0-9a-fA-F]{64}$"), "a 32-byte hex seed"),
    (re.compile(r"^//[A-Za-z0-9]"), "a development secret URI (//Name)"),
    (re.compile(r"^([a-z]{3,8}\s+){11,23}[a-z]{3,8}(//\S*)?(///\S*)?$"), "a mnemonic phrase"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a PEM private key"),
    (re.compile(r"\{\s*\"(suri|secretPhrase|secretSeed|encoded)\""), "a keystore document"),
]


def _secret_like(value: str) -> str | None:
    for pattern, what in _SECRET_VALUES:
        if pattern.search(value.strip()):
            return what
    return None


def check_no_secret_values(objs: list[Obj]) -> list[str]:
    """No Secret objects with data in the manifests; no env value, ConfigMap value or container
    argument that looks like a key, seed or mnemonic; secret-named env vars only by valueFrom."""
    problems = []
    for obj in objs:
        if obj.get("kind") == "Secret" and (obj.get("data") or obj.get("stringData")):
            problems.append(f"{ident(obj)}: a Secret with values in the manifests (create it out of band)")
        if obj.get("kind") == "ConfigMap":
            for key, value in {**(obj.get("data") or {}), **(obj.get("binaryData") or {})}.items():
                what = _secret_like(str(value))
                if what or _SECRET_NAME.search(key):
                    problems.append(f"{ident(obj)}: data {key} looks like a secret ({what or 'its name'})")
        for where, c, _, _ in containers(obj):
            for env in c.get("env") or []:
                if "value" not in env:
                    continue
                what = _secret_like(str(env["value"]))
                if what:
                    problems.append(f"{ident(obj)}: {where}: env {env['name']} holds {what}")
                elif _SECRET_NAME.search(env["name"]) and env["value"]:
                    problems.append(f"{ident(obj)}: {where}: env {env['name']} is set by value, not from a Secret")
            for arg in (c.get("command") or []) + (c.get("args") or []):
                what = _secret_like(str(arg))
                if what:
                    problems.append(f"{ident(obj)}: {where}: an argument holds {what}")
    return problems


POLICY_CHECKS = {
    "images_pinned": check_images_pinned,
    "resources": check_resources,
    "probes": check_probes,
    "non_root": check_non_root,
    "hardening": check_hardening,
    "no_secret_values": check_no_secret_values,
}
SCHEMA_CHECKS = {"builtin_schemas": check_builtin_schemas, "crd_schemas": check_crd_schemas}


# ---------------------------------------------------------------- the CLI
def paratrain_invocations(objs: list[Obj]) -> list[tuple[str, list[str]]]:
    """(where, argv after `paratrain`) for every container command/args and RayJob entrypoint that runs
    paratrain, with $(VAR) references resolved from the container's env and envFrom ConfigMaps."""
    configmaps = {o["metadata"]["name"]: o.get("data") or {} for o in objs if o.get("kind") == "ConfigMap"}
    found = []
    for obj in objs:
        for where, c, _, _ in containers(obj):
            argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
            if not argv or Path(argv[0]).name != "paratrain":
                continue
            env: dict[str, str] = {}
            for src in c.get("envFrom") or []:
                env.update(configmaps.get((src.get("configMapRef") or {}).get("name"), {}))
            for e in c.get("env") or []:
                ref = ((e.get("valueFrom") or {}).get("configMapKeyRef") or {})
                if "value" in e:
                    env[e["name"]] = e["value"]
                elif ref:
                    env[e["name"]] = configmaps.get(ref.get("name"), {}).get(ref.get("key"), "x")
                else:
                    env[e["name"]] = "x"  # from a Secret or a field: any value parses
            resolved = [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), "x"), a)
                        for a in argv[1:]]
            found.append((f"{ident(obj)}: {where}", resolved))
        if obj.get("kind") == "RayJob" and obj.get("spec", {}).get("entrypoint"):
            argv = shlex.split(obj["spec"]["entrypoint"])
            if argv and Path(argv[0]).name == "paratrain":
                found.append((f"{ident(obj)}: spec.entrypoint", argv[1:]))
    return found


def paratrain_exe() -> list[str]:
    exe = Path(sys.executable).with_name("paratrain")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "paratrain.cli"]


def check_cli(objs: list[Obj]) -> list[str]:
    """Each paratrain invocation, run with `--help` appended, exits 0 and its help lists every flag used."""
    problems = []
    for where, args in paratrain_invocations(objs):
        out = subprocess.run([*paratrain_exe(), *args, "--help"], capture_output=True, text=True, timeout=60,
                             cwd=ROOT)
        if out.returncode != 0:
            problems.append(f"{where}: `paratrain {' '.join(args)} --help` exited {out.returncode}: "
                            f"{out.stderr.strip()[-300:]}")
            continue
        for flag in (a.split("=", 1)[0] for a in args if a.startswith("--")):
            if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", out.stdout):
                problems.append(f"{where}: flag {flag} is not in `paratrain {args[0]} --help`")
    return problems


ALL_CHECKS = {**SCHEMA_CHECKS, **POLICY_CHECKS, "cli": check_cli}

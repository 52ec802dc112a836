"""Regenerate the gRPC stubs of `proto/paratrain/v1/*.proto` into `paratrain_api/v1/`, and those of the Open
Inference Protocol (`proto/inference/*.proto`, KServe's v2 gRPC API, package `inference`) into
`paratrain_api/inference/`.

    python -m paratrain_api.protogen           # rewrite both packages' *_pb2.py, *_pb2_grpc.py, *_pb2.pyi
    python -m paratrain_api.protogen --check   # exit 1 (and list the files) when they drift from the protos

The stubs live in `paratrain_api`, the bottom layer, because the server (orchestrator), its clients
(workers, the CLI) and the tests all import them: a package below every one of them is the only place
none of them has to import upward to reach. The .proto files stay under `proto/paratrain/v1/`, the
directory buf requires for `package paratrain.v1` (PACKAGE_DIRECTORY_MATCH), so the wire names and the
file names that reflection serves are unchanged. protoc (from grpcio-tools) runs with `-I proto` and
writes modules named `paratrain.v1.<name>_pb2`; only their Python module path is rewritten, to
`paratrain_api.v1`, never the proto package or the service and method paths. The output is deterministic:
files are generated in sorted order into a temporary folder and only the generated files are compared
or copied.

The generated code names the grpcio-tools/protobuf versions that produced it;
`--check` compares those lines too, so regenerate after upgrading grpcio-tools
(and raise the lower bounds of grpcio/protobuf in pyproject.toml to match).
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")


@dataclass(frozen=True)
class StubPackage:
    """One proto package: where its .proto files are (relative to proto/, the directory protoc writes to) and
    the Python package its stubs go to."""

    proto: str
    out: str
    init_text: str

    @property
    def out_dir(self) -> Path:
        return ROOT / self.out.replace(".", "/")


V1 = StubPackage("paratrain/v1", "paratrain_api.v1",
                 '"""Generated gRPC stubs of the paratrain.v1 contract (python -m paratrain_api.protogen)."""\n')
INFERENCE = StubPackage("inference", "paratrain_api.inference",
                        '"""Generated gRPC stubs of the Open Inference Protocol, KServe\'s v2 API '
                        '(python -m paratrain_api.protogen)."""\n')
PACKAGES = (V1, INFERENCE)

# protoc names the modules after the proto files' path: `from paratrain.v1 import common_pb2 as ...`
# between the stubs, and 'paratrain.v1.common_pb2' as the module of the generated classes (pickling,
# reprs). Both become paratrain_api.v1. A bare `import common_pb2` (if someone changes -I) is fixed too.
# Quoted names with a service or message after the module (b'paratrain.v1.Task', '/paratrain.v1.X/Y')
# never end in `_pb2'`, so the wire names are left alone.
_BARE_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def _relocate(text: str, package: StubPackage) -> str:
    """protoc's output with its Python module path moved from the proto package (paratrain.v1) to the stubs'
    package (paratrain_api.v1)."""
    proto_module = re.escape(package.proto.replace("/", "."))
    text = re.sub(rf"^from {proto_module} import ", f"from {package.out} import ", text, flags=re.MULTILINE)
    text = re.sub(rf"'{proto_module}\.(\w+_pb2)'", rf"'{package.out}.\1'", text)
    return _BARE_IMPORT.sub(rf"from {package.out} import \1 as \2", text)


def proto_files(proto_dir: Path = PROTO_DIR, package: StubPackage = V1) -> list[Path]:
    return sorted((proto_dir / package.proto).glob("*.proto"))


def generate(out_root: Path, proto_dir: Path = PROTO_DIR, package: StubPackage = V1) -> dict[str, str]:
    """Run protoc into `out_root`; return {file name: text} of `package`'s generated files."""
    import grpc_tools
    from grpc_tools import protoc

    files = proto_files(proto_dir, package)
    if not files:
        raise SystemExit(f"no .proto files under {proto_dir / package.proto}")
    out_root.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *[str(f.relative_to(proto_dir)) for f in files],
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    out: dict[str, str] = {}
    for path in sorted((out_root / package.proto).iterdir()):
        if path.name.endswith(SUFFIXES):
            out[path.name] = _relocate(path.read_text(encoding="utf-8"), package)
    out["__init__.py"] = package.init_text
    return out


def current(target: Path) -> dict[str, str]:
    if not target.is_dir():
        return {}
    return {
        p.name: p.read_text(encoding="utf-8")
        for p in sorted(target.iterdir())
        if p.name.endswith(SUFFIXES) or p.name == "__init__.py"
    }


def drift(generated: dict[str, str], existing: dict[str, str]) -> list[str]:
    """Names of files that differ, are missing, or are stale leftovers."""
    names = sorted(set(generated) | set(existing))
    return [n for n in names if generated.get(n) != existing.get(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paratrain_api.protogen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in stubs drift from the protos")
    parser.add_argument("--proto-dir", type=Path, default=PROTO_DIR)
    parser.add_argument("--out", type=Path, default=V1.out_dir, help="the paratrain_api/v1 package folder")
    args = parser.parse_args(argv)
    status = 0
    for package in PACKAGES:
        with tempfile.TemporaryDirectory(prefix="protogen-") as tmp:
            generated = generate(Path(tmp), args.proto_dir, package)
        out = args.out if package is V1 else package.out_dir
        changed = drift(generated, current(out))
        if args.check:
            if changed:
                print("generated stubs drift from proto/ (run `python -m paratrain_api.protogen`):", file=sys.stderr)
                for name in changed:
                    print(f"  {out / name}", file=sys.stderr)
                status = 1
            else:
                print(f"{len(generated)} generated files in {package.out} up to date")
            continue
        out.mkdir(parents=True, exist_ok=True)
        for name in changed:
            if name in generated:
                (out / name).write_text(generated[name], encoding="utf-8")
            else:
                (out / name).unlink()
        print(f"wrote {len(changed)} of {len(generated)} files into {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())

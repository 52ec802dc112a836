"""Regenerate the gRPC stubs of `proto/paratrain/v1/*.proto` into `paratrain_api/v1/`.

    python -m paratrain_api.protogen           # rewrite paratrain_api/v1/*_pb2.py, *_pb2_grpc.py, *_pb2.pyi
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PROTO_PACKAGE = Path("paratrain") / "v1"  # where protoc writes, from the proto package's directory
OUT_PACKAGE = Path("paratrain_api") / "v1"
SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")
INIT_TEXT = '"""Generated gRPC stubs of the paratrain.v1 contract (python -m paratrain_api.protogen)."""\n'

# protoc names the modules after the proto files' path: `from paratrain.v1 import common_pb2 as ...`
# between the stubs, and 'paratrain.v1.common_pb2' as the module of the generated classes (pickling,
# reprs). Both become paratrain_api.v1. A bare `import common_pb2` (if someone changes -I) is fixed too.
# Quoted names with a service or message after the module (b'paratrain.v1.Task', '/paratrain.v1.X/Y')
# never end in `_pb2'`, so the wire names are left alone.
_PACKAGE_IMPORT = re.compile(r"^from paratrain\.v1 import ", re.MULTILINE)
_MODULE_NAME = re.compile(r"'paratrain\.v1\.(\w+_pb2)'")
_BARE_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def _relocate(text: str) -> str:
    """protoc's output with its Python module path moved from paratrain.v1 to paratrain_api.v1."""
    text = _PACKAGE_IMPORT.sub("from paratrain_api.v1 import ", text)
    text = _MODULE_NAME.sub(r"'paratrain_api.v1.\1'", text)
    return _BARE_IMPORT.sub(r"from paratrain_api.v1 import \1 as \2", text)


def proto_files(proto_dir: Path = PROTO_DIR) -> list[Path]:
    return sorted((proto_dir / "paratrain" / "v1").glob("*.proto"))


def generate(out_root: Path, proto_dir: Path = PROTO_DIR) -> dict[str, str]:
    """Run protoc into `out_root`; return {file name: text} of the generated files."""
    import grpc_tools
    from grpc_tools import protoc

    files = proto_files(proto_dir)
    if not files:
        raise SystemExit(f"no .proto files under {proto_dir / 'paratrain' / 'v1'}")
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
    for path in sorted((out_root / PROTO_PACKAGE).iterdir()):
        if path.name.endswith(SUFFIXES):
            out[path.name] = _relocate(path.read_text(encoding="utf-8"))
    out["__init__.py"] = INIT_TEXT
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
    parser.add_argument("--out", type=Path, default=ROOT / OUT_PACKAGE, help="the paratrain_api/v1 package folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="protogen-") as tmp:
        generated = generate(Path(tmp), args.proto_dir)
    existing = current(args.out)
    changed = drift(generated, existing)
    if args.check:
        if changed:
            print("generated stubs drift from proto/ (run `python -m paratrain_api.protogen`):", file=sys.stderr)
            for name in changed:
                print(f"  {args.out / name}", file=sys.stderr)
            return 1
        print(f"{len(generated)} generated files up to date")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in changed:
        if name in generated:
            (args.out / name).write_text(generated[name], encoding="utf-8")
        else:
            (args.out / name).unlink()
    print(f"wrote {len(changed)} of {len(generated)} files into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

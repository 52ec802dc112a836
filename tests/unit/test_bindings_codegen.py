"""The checked-in typed layer is exactly what the generator makes from devnet's metadata."""
from __future__ import annotations

import ast
import functools

from devnet.metadata import encode_metadata
from devnet.runtime.runtime import Runtime
from runtime_bindings import codegen


@functools.cache
def devnet_metadata() -> bytes:
    return encode_metadata(Runtime())


def test_generated_files_match_devnet_metadata() -> None:
    files = codegen.generate(devnet_metadata())
    stale = codegen.drift(files, codegen.OUT_DIR)
    assert not stale, f"run `python -m devnet.metadata | python -m runtime_bindings.codegen --metadata -`: stale {stale}"


def test_generation_is_deterministic_and_valid_python() -> None:
    raw = devnet_metadata()
    first, second = codegen.generate(raw), codegen.generate(raw)
    assert first == second
    for name, source in first.items():
        ast.parse(source, name)
        assert source.startswith(codegen.HEADER)


def test_every_pallet_has_a_module_with_its_errors_and_calls() -> None:
    import importlib

    from runtime_bindings.generated import PALLETS
    from runtime_bindings.metadata import MetadataIndex, decode_metadata

    md = MetadataIndex(decode_metadata(devnet_metadata()))
    assert set(PALLETS) == set(md.pallets)
    for pallet, module_name in PALLETS.items():
        module = importlib.import_module(f"runtime_bindings.generated.{module_name}")
        base = getattr(module, f"{pallet}Error")
        for error in md.pallet_errors(pallet):
            cls = getattr(base, error["name"])
            assert issubclass(cls, base) and cls.name == error["name"] and cls.pallet == pallet
        api = getattr(module, f"{pallet}Api")
        for call in md.calls(pallet):
            assert callable(getattr(api, call["name"]))

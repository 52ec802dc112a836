"""workers.privacy.seeds: the keyed per-step seeds (known vectors; key, step, spec and domain all matter)."""
from __future__ import annotations

import pytest

from workers.privacy.seeds import noise_key_hash, noise_seed, sample_seed

KEY = bytes(range(32))
SPEC = bytes(32)


def test_known_vectors() -> None:
    # blake2b-64(key=KEY, b"paratrain/dp-noise/v1" ++ 32 zero bytes ++ u64le(step)), read little-endian
    assert noise_seed(KEY, SPEC, 0) == 7904287855502296019
    assert noise_seed(KEY, SPEC, 1) == 9430266978652688227
    assert sample_seed(KEY, SPEC, 0) == 1245688745743415440
    # blake2_256(b"paratrain/dp-key/v1" ++ KEY): the DpSpec's noise_key_hash
    assert noise_key_hash(KEY).hex() == "aac16b36150e7dcc6cd65102eb74761268347456bc456e66e1127694e05bd322"


def test_every_input_changes_the_seed() -> None:
    base = noise_seed(KEY, SPEC, 5)
    others = {noise_seed(bytes(31) + b"\x01", SPEC, 5), noise_seed(KEY, b"\x01" + bytes(31), 5),
              noise_seed(KEY, SPEC, 6), sample_seed(KEY, SPEC, 5)}
    assert base not in others and len(others) == 4
    assert len({noise_seed(KEY, SPEC, s) for s in range(1000)}) == 1000
    assert all(0 <= noise_seed(KEY, SPEC, s) < 2**64 for s in (0, 2**64 - 1))


@pytest.mark.parametrize("key, spec, step", [(bytes(31), SPEC, 0), ("x" * 32, SPEC, 0), (KEY, bytes(31), 0),
                                             (KEY, SPEC, -1), (KEY, SPEC, 2**64), (KEY, SPEC, True)])
def test_bad_inputs_refused(key, spec, step) -> None:
    with pytest.raises(ValueError):
        noise_seed(key, spec, step)

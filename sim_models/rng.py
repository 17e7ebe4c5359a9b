"""Per-component random generators derived from the scenario seed.

Each component asks for its own generator by name, so adding a component never
changes the draws another one sees.
"""

import hashlib

import numpy as np

__all__ = ["component_rng"]


def component_rng(seed: int, name: str) -> np.random.Generator:
    """A generator that depends only on `seed` and `name` (stable across runs)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, *words]))

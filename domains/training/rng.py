"""Per-step randomness: generators and seeds that are pure functions of ``(seed, step, ...)``.

Data order and injected noise drawn this way do not depend on what ran before, so a run resumed from a
checkpoint at step N sees exactly the batches and the noise an uninterrupted run saw from step N on.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """A CPU generator determined by ``(seed, step, stream)`` alone (hashed by numpy's SeedSequence).

    ``stream`` keeps independent uses apart (e.g. the window order and the anomalies of one step).
    """
    state = np.random.SeedSequence([seed % 2**63, step, stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def derived_seed(*numbers: int) -> int:
    """A 63-bit seed derived from integers (SHA-256 of their decimal text: stable across processes, unlike ``hash``)."""
    digest = hashlib.sha256(",".join(map(str, numbers)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1

"""Helpers shared by the expression-engine unit tests (no server)."""
from __future__ import annotations

import numpy as np

from engine.expression.base import Frames, Style
from engine.rig import NUM_BLENDSHAPES, NUM_BONES


def run_engine(engine, audio, fps=30, style=None, chunks=None) -> Frames:
    """Push audio (whole, or split at the given sizes) into one stream, finish, and return the
    concatenated Frames; checks that frame indices are contiguous across pushes."""
    s = engine.open(fps, style or Style())
    blocks = []
    if chunks is None:
        blocks.append(s.push(audio))
    else:
        pos = 0
        for c in chunks:
            blocks.append(s.push(audio[pos:pos + c]))
            pos += c
        assert pos == len(audio)
    blocks.append(s.finish())
    nxt = 0
    for b in blocks:
        assert b.first_index == nxt or len(b) == 0, "frame indices must be contiguous"
        nxt += len(b)
    vis = [b.visemes for b in blocks if len(b) and b.visemes is not None]
    return Frames(0, np.concatenate([b.weights for b in blocks]), np.concatenate([b.rotations for b in blocks]),
                  None, [w for b in blocks for w in b.warnings], np.concatenate(vis) if vis else None)


def assert_frame_contract(f: Frames) -> None:
    """What every engine's frames promise (engine/expression/base.py): float32 weights in 0..1 in ARKit
    order, unit quaternions per bone."""
    assert f.weights.dtype == np.float32 and f.weights.shape == (len(f), NUM_BLENDSHAPES)
    assert f.rotations.dtype == np.float32 and f.rotations.shape == (len(f), NUM_BONES, 4)
    assert np.all(np.isfinite(f.weights)) and f.weights.min() >= 0 and f.weights.max() <= 1
    np.testing.assert_allclose(np.linalg.norm(f.rotations, axis=-1), 1.0, atol=1e-5)


def random_chunk_sizes(n: int, seed: int = 1) -> list[int]:
    """Positive chunk sizes summing to n, as an audio callback might send them: 15 % single samples, the
    rest split between tiny (2-39) and large (40-2999) chunks."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < n:
        r = rng.random()
        sizes.append(1 if r < 0.15 else int(rng.integers(2, 40)) if r < 0.5 else int(rng.integers(40, 3000)))
    sizes[-1] -= sum(sizes) - n
    return [s for s in sizes if s > 0]

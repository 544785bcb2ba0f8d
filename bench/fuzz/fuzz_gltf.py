"""Fuzz avatar loading for the preview renderer (engine/render/avatar.py Avatar.load over gltf.py and
pygltflib): the file is written to a temp path and loaded, which parses the GLB/JSON, every accessor the
meshes use (quantized, sparse, meshopt-compressed), skins and morph targets, and poses the rest pose.

Input: byte 0 picks the extension (even: .glb, odd: .gltf), the rest is the file.

Clean rejection: AvatarError (a ValueError naming the file and what to do). A loaded avatar must have
triangle primitives, an ARKit target, and (V, 3) rest positions.
"""
import os
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from bench.fuzz import harness  # noqa: E402

import atheris  # noqa: E402

with atheris.instrument_imports(include=["engine.render.gltf", "engine.render.avatar", "pygltflib"]):
    import pygltflib  # noqa: F401
    from engine.render.avatar import Avatar
    from engine.render.gltf import AvatarError

import logging  # noqa: E402

logging.getLogger("pygltflib").setLevel(logging.CRITICAL)
warnings.simplefilter("ignore")
DIR = tempfile.mkdtemp(prefix="fuzz-gltf-")


def one_input(data: bytes) -> None:
    if not data:
        return
    path = os.path.join(DIR, "avatar.glb" if data[0] % 2 == 0 else "avatar.gltf")
    with open(path, "wb") as fh:
        fh.write(data[1:])
    try:
        av = Avatar.load(path)
    except AvatarError as exc:
        assert str(exc)
        return
    assert av.primitives and av.arkit_present
    for p in av.rest.positions:
        assert p.ndim == 2 and p.shape[1] == 3


if __name__ == "__main__":
    harness.main("gltf", one_input, max_len=16384)

"""Fuzz the learned engine's weights loader (engine/expression/learned_runtime.py load_pretrained of
config.json + model.npz, then NumpyExpressionNet and one step), as a worker does for the learned_weights
setting.

Input: bytes 0-1 = length L of config.json (uint16 LE), then L bytes of config.json, the rest is model.npz.

Clean rejection: ModelFileError (a ValueError naming the file and the fix). A network that loads must run a
step on 3 frames of features and give (3, n_visemes) logits and (3,) jaw values.
"""
import os
import struct
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from bench.fuzz import harness  # noqa: E402

import atheris  # noqa: E402
import numpy as np  # noqa: E402

with atheris.instrument_imports(include=["engine.expression.learned_runtime"]):
    from engine.expression.learned_runtime import ModelFileError, NumpyExpressionNet

DIR = tempfile.mkdtemp(prefix="fuzz-learned-")
warnings.simplefilter("ignore")  # overflow in a fuzzed weight is not a crash
np.seterr(all="ignore")


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    (n,) = struct.unpack("<H", data[:2])
    with open(os.path.join(DIR, "config.json"), "wb") as fh:
        fh.write(data[2:2 + n])
    with open(os.path.join(DIR, "model.npz"), "wb") as fh:
        fh.write(data[2 + n:])
    try:
        net = NumpyExpressionNet.from_pretrained(DIR)
    except ModelFileError as exc:
        assert str(exc)
        return
    feats = np.zeros((3, net.cfg.n_mels), np.float32)
    logits, jaw, state = net.step(feats, net.initial_state())
    assert logits.shape == (3, net.cfg.n_visemes) and jaw.shape == (3,), (logits.shape, jaw.shape)


if __name__ == "__main__":
    harness.main("learned_model", one_input, max_len=16384)

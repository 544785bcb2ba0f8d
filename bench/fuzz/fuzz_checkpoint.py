"""Fuzz the checkpoint loaders' header parsing (engine/video/checkpoints.py, engine/video/loader.py):
the LiveAvatar LoRA file (read_lora: safetensors header + tensors + PEFT key names), the DiT shard index
(read_index / missing_files) and one DiT shard (read_shard: safetensors header, keys, shapes, dtype cast).

Input: byte 0 picks the file (0 LoRA .safetensors, 1 index JSON, 2 shard .safetensors holding
patch_embedding.bias [4] and head.modulation [1, 2, 4]), the rest is its bytes.

Clean rejection: CheckpointError (its message names the file and how to fetch it again).
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from bench.fuzz import harness  # noqa: E402

import atheris  # noqa: E402
import torch  # noqa: E402

with atheris.instrument_imports(include=["engine.video.checkpoints", "engine.video.loader"]):
    from engine.video import checkpoints, loader
    from engine.video.checkpoints import CheckpointError

torch.set_num_threads(1)
DIR = tempfile.mkdtemp(prefix="fuzz-ckpt-")
EXPECTED = {"patch_embedding.bias": (4,), "head.modulation": (1, 2, 4)}
for name in ("config.json", checkpoints.VAE_FILE):
    open(os.path.join(DIR, name), "wb").close()


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 3, data[1:]
    name = (checkpoints.LORA_FILE, checkpoints.DIT_INDEX, "shard.safetensors")[mode]
    path = os.path.join(DIR, name)
    with open(path, "wb") as fh:
        fh.write(body)
    try:
        if mode == 0:
            pairs, alpha = loader.read_lora(path)
            for a, b in pairs.values():
                assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
            assert alpha is None or isinstance(alpha, float)
        elif mode == 1:
            wm = checkpoints.read_index(path)
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in wm.items())
            missing = checkpoints.missing_files(DIR, need_text=False, need_audio=False)
            assert all(isinstance(m, str) for m in missing)
        else:
            state = loader.read_shard(path, list(EXPECTED), EXPECTED, "cpu", torch.bfloat16)
            assert {k: tuple(v.shape) for k, v in state.items()} == EXPECTED
            assert all(v.dtype == torch.bfloat16 for v in state.values())
    except CheckpointError as exc:
        assert str(exc)
    finally:
        os.unlink(path)


if __name__ == "__main__":
    harness.main("checkpoint", one_input, max_len=8192)

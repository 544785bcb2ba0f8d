"""Memory modes of the LiveAvatar speed path on CPU with the tiny released-layout checkpoint: FP8 KV caches
(real e4m3 storage: the dtype is storage only, so it runs on the CPU) under the numerics guard; block-wise weight
streaming (engine/video/offload.py) computing exactly the numbers of the resident run, one unit resident at a
time, every unit copied once per pass; KV caches in host memory; and the clear error when host memory is short."""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

# The tiny checkpoint, its DiT, the block inputs and the reference latents: the speed-path tests' fixtures.
from test_video_speed import BLOCKS, _dit, _errs, ckpt, dit, inputs, reference  # noqa: E402,F401


@pytest.fixture(scope="module")
def fast(dit, inputs):
    from engine.video.speed import SpeedOptions, causal_latents
    return causal_latents(dit, SpeedOptions(fast=True), **inputs)[0]


def test_fp8_kv_cache_stores_e4m3_and_halves_memory(dit, inputs):
    from engine.video.dit import Cond, CondCache, FastKVCache
    from engine.video.speed import FP8
    cfg = dit.config
    cc = CondCache(cfg.num_layers, torch.float32)
    dit.prefill_cond_fast(cc, Cond(inputs["context"], inputs["ref"], inputs["motion"]))
    n = cc.k[0].shape[1]
    args = (cfg.num_layers, 1, 12 * 16, n, cfg.num_heads, cfg.head_dim, torch.float32, "cpu")
    full, f8 = FastKVCache(*args), FastKVCache(*args, FP8)
    cc.bind_all(dit, [full, f8])
    assert f8.k[0].dtype == FP8 and f8.ks[0].dtype == torch.float32
    hd = cfg.head_dim  # fp32 -> 1 byte per channel + one fp32 scale per token and head
    assert f8.nbytes() * 4 * hd == full.nbytes() * (hd + 4)
    k = torch.randn(1, 16, cfg.num_heads, cfg.head_dim) * torch.logspace(-2, 2, cfg.num_heads)[None, None, :, None]
    for c in (full, f8):
        keys, vals = c.write_and_window(0, 0, k, k)
    want, _ = full.write_and_window(0, 0, k, k)
    err = float((keys - want).norm() / want.norm())
    assert 1e-4 < err < 4e-2  # e4m3: 3 mantissa bits, per token-and-head scale keeps small heads precise
    small = slice(0, 2)  # the quietest heads alone are as precise as the loud ones (scale per head)
    ks = keys[:, n:n + 16, small]
    ws = want[:, n:n + 16, small]
    assert float((ks - ws).norm() / ws.norm()) < 4e-2
    assert vals.dtype == torch.float32 and vals.shape == keys.shape  # dequantised for attention


def test_fp8_kv_cache_numerics_guard(dit, inputs, reference):
    from engine.video.speed import THRESHOLDS, SpeedOptions, causal_latents, check_numerics
    opts = SpeedOptions(fast=True, kv_cache="fp8")
    errs = _errs(causal_latents(dit, opts, **inputs)[0], reference)
    assert check_numerics(errs, opts, "fp32") == [], errs
    assert min(errs) > 1e-5  # it really quantised the caches
    assert check_numerics([THRESHOLDS["fp32"]["fp8kv"] * 2], opts, "fp32")


def test_bind_all_compacts_the_sink_cache(dit, inputs):
    from engine.video.dit import Cond, CondCache, FastKVCache
    cfg = dit.config
    cc = CondCache(cfg.num_layers, torch.float32)
    dit.prefill_cond_fast(cc, Cond(inputs["context"], inputs["ref"], inputs["motion"]))
    n = cc.k[0].shape[1]
    c1 = FastKVCache(cfg.num_layers, 1, 12 * 16, n, cfg.num_heads, cfg.head_dim, torch.float32, "cpu")
    cc.bind_all(dit, [c1])
    assert cc.v[0] is None and cc.k[0].shape[1] == cc.n_ref
    late = FastKVCache(cfg.num_layers, 1, 12 * 16, n, cfg.num_heads, cfg.head_dim, torch.float32, "cpu")
    with pytest.raises(ValueError, match="compacted"):
        late.bind(dit, cc)


def _streamed(ckpt, quant_emulated=False):
    from engine.video.offload import LayerStreamer
    from engine.video.speed import quantize_dit
    d = _dit(ckpt)
    if quant_emulated:
        quantize_dit(d, emulate=True, memory=True)
    return d, LayerStreamer(d, "cpu")


def test_weight_streaming_equals_resident_run(ckpt, inputs, fast):
    """Streamed blocks compute exactly the resident numbers; one unit on the device at a time; each unit is
    copied once per pass over the layers; outside a pass every block weight points at its host buffer."""
    from engine.video.speed import SpeedOptions, causal_latents
    d, st = _streamed(ckpt)
    seen = []
    orig = st.acquire

    def acquire(i):
        orig(i)
        seen.append(len(st.resident))
        w = d.blocks[i].self_attn.q.weight
        assert any(w.data_ptr() == s.data_ptr() + st.units[i].specs[st.units[i].slots.index(
            ("param", d.blocks[i].self_attn.q, "weight", None))][2] for s in st.slots)

    st.acquire = acquire
    out = causal_latents(d, SpeedOptions(fast=True, offload="weights"), **inputs)[0]
    assert all(torch.equal(a, b) for a, b in zip(out, fast))
    assert seen and max(seen) == 1
    L = d.config.num_layers
    passes = 1 + 1 + BLOCKS * 4  # text K/V, sink prefill, 4 steps per block
    assert len(seen) == passes * L
    # each unit once per pass, plus unit 0 prefetched after the last layer for the next pass
    assert st.copied_bytes == sum(u.nbytes for u in st.units) * passes + st.units[0].nbytes
    for u in st.units:
        h0, h1 = u.host.data_ptr(), u.host.data_ptr() + u.nbytes
        assert all(h0 <= t.data_ptr() < h1 for t in u.tensors())


def test_weight_and_kv_streaming_with_fp8_equals_resident(ckpt, inputs):
    """FP8 weights (emulated), FP8 KV caches, weights streamed, KV caches at home in host memory: the same
    numbers as the resident FP8 run."""
    from engine.video.speed import SpeedOptions, causal_latents, quantize_dit
    dq = _dit(ckpt)
    quantize_dit(dq, emulate=True, memory=True)
    opts = SpeedOptions(fast=True, quant="fp8", kv_cache="fp8")
    want = causal_latents(dq, opts, **inputs)[0]
    d, st = _streamed(ckpt, quant_emulated=True)
    got = causal_latents(d, SpeedOptions(fast=True, quant="fp8", kv_cache="fp8", offload="weights+kv"),
                         **inputs)[0]
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert any(u.nbytes for u in st.units) and dq.blocks[0].cross_attn.k.weight.numel() == 0  # k/v in FP8 too


def test_short_host_memory_is_a_clear_error(monkeypatch, ckpt):
    from engine.video import offload
    from engine.video.pipeline import VideoEngine
    from engine.video.speed import SpeedConfigError, SpeedOptions
    with pytest.raises(SpeedConfigError, match=r"needs about 2\.0 GiB of free host memory.*--quant fp8"):
        offload.check_host_memory(2 << 30, "the DiT weights", available=1 << 30)
    offload.check_host_memory(1 << 30, "x", available=2 << 30)
    monkeypatch.setattr(offload, "host_available_bytes", lambda: 1024)
    eng = VideoEngine(ckpt, lora=os.path.join(ckpt, "liveavatar.safetensors"), device="cpu",
                      speed=SpeedOptions(offload="weights"))
    with pytest.raises(SpeedConfigError, match="host memory for the DiT weights.*--offload_dit weights"):
        eng.load()
    assert eng.dit is None  # refused before reading the weights
    with pytest.raises(ValueError, match="offload_dit must be one of"):
        SpeedOptions(offload="disk")
    with pytest.raises(ValueError, match="kv_cache must be"):
        SpeedOptions(kv_cache="int4")


def test_engine_stream_offloaded_matches_fast(ckpt):
    """The whole LiveAvatar stream (2 clips: rolling sink re-binds the caches) with weights and KV caches
    streamed: the same frames as the resident speed path."""
    from engine.video.inputs import decode_image
    from engine.video.pipeline import GenParams, VideoEngine
    from engine.video.speed import SpeedOptions
    from conftest import shared_file
    img = decode_image(shared_file("images/hallo_3.jpg").read_bytes())
    t = np.arange(16000 * 2) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    p = GenParams(size="64*64", seed=5, infer_frames=12, num_clip=2)
    lora = os.path.join(ckpt, "liveavatar.safetensors")
    frames = {}
    for name, opts in (("fast", SpeedOptions(fast=True)), ("offload", SpeedOptions(offload="weights+kv"))):
        eng = VideoEngine(ckpt, lora=lora, device="cpu", speed=opts)
        frames[name] = np.concatenate([c.frames for c in eng.stream(img, audio, "a woman is talking", p)])
        if name == "offload":
            assert eng.dit._streamer.copied_bytes > 0 and eng.text is not None
    assert frames["fast"].shape == frames["offload"].shape
    assert np.array_equal(frames["fast"], frames["offload"])
    with pytest.raises(ValueError, match="LiveAvatar causal mode only"):
        list(VideoEngine(ckpt, device="cpu", speed=SpeedOptions(offload="weights")).stream(
            img, audio, "x", GenParams(mode="s2v", size="64*64", infer_frames=12, num_clip=1, sample_steps=1)))


def test_fp8_stored_checkpoint_is_refused_with_the_fix(ckpt, tmp_path):
    """FP8 copies are made at load from the released bf16 shards; a shard holding FP8 tensors (someone's
    export, scales unknown) is refused naming the key and what to do, not silently cast."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    from engine.video.checkpoints import DIT_INDEX, CheckpointError
    from engine.video.loader import load_dit
    bad = tmp_path / "fp8_ckpt"
    shutil.copytree(ckpt, bad)
    key = "blocks.0.self_attn.q.weight"
    shard = bad / json.load(open(bad / DIT_INDEX))["weight_map"][key]
    tensors = load_file(str(shard))
    tensors[key] = tensors[key].to(torch.float8_e4m3fn)
    save_file(tensors, str(shard))
    with pytest.raises(CheckpointError, match=r"blocks\.0\.self_attn\.q\.weight .* stored as F8_E4M3.*--quant fp8"):
        load_dit(str(bad), "cpu", torch.float32)

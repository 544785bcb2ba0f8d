"""Speed path of the LiveAvatar causal DiT (issue 17, "Speed path") and its numerics guard.

What a ``SpeedOptions`` turns on (all off = the reference path, unchanged):

- ``fast`` (implied by ``compile`` and ``quant``): the refactored eager path in ``dit.py``: RoPE from
  precomputed fp32 cos/sin tables (not float64 complex per layer), the sink (ref + motion) K/V kept inside
  each step's KV cache (no per-layer concatenation of the window), text K/V computed once per clip;
- ``compile``: regional ``torch.compile`` of each layer's non-attention parts (the self-attention SDPA is left
  to PyTorch's kernel choice). The regions are plain functions of tensors, so all 40 layers share ONE graph
  per region; ``Regions.graphs`` counts compilations and ``assert_no_recompiles`` checks it. A region that fails
  to compile falls back to eager with a warning;
- ``quant="fp8"``: FP8 e4m3 linears with rowwise scales (weights once, activations per call) through
  ``torch._scaled_mm(..., use_fast_accum=True)``; needs a CUDA GPU of compute capability >= 9.0 (Hopper).
  Anything else is a ``SpeedConfigError`` (a ValueError: the CLI prints it and exits 2);
- ``compile_vae``: ``torch.compile`` of the VAE decoder (default: on with ``compile``), eager on failure;
- ``kv_cache="fp8"`` (implies ``fast``): the per-step KV caches (sink + ring window) stored in FP8 e4m3 with one
  fp32 scale per token and head, dequantised to the model dtype per layer for attention (half the cache memory;
  runs anywhere, it is storage only). With ``quant="fp8"`` the cross-attention and audio-injector k/v linears
  are quantised as well (memory; they run once per clip / on 5 tokens per frame);
- ``attention`` (implies ``fast``): the window self-attention kernel. ``"sdpa"`` (default): PyTorch's SDPA
  (cuDNN on Hopper). ``"fa3"``: FlashAttention-3, bf16, the same maths (Hopper only; the ``flash_attn_3``
  wheel, built by ``bench/fa3_build.sh``). ``"fa3-fp8"``: FlashAttention-3 on e4m3 operands. Its KV caches are
  stored in e4m3 with one scale per layer and head, set by the stream's first sink (``KV_HEAD_HEADROOM``
  above its largest value; a rolling sink keeps them; rows beyond them saturate), so attention reads the cache as it is;
  q gets one scale per head per call. Anything that cannot run is a ``SpeedConfigError`` naming the fix;
- ``offload`` (implies ``fast``): ``"weights"`` streams each DiT layer's weights from pinned host memory into
  one of two device slots, the next layer copied on a side stream while this one computes
  (``engine/video/offload.py``); ``"weights+kv"`` keeps the KV caches in host memory too (the window is copied
  in per layer, the new block's K/V copied back). For GPUs with 24 GB or less.

Settings: the environment variables ``AVATAR_VIDEO_FAST=1``, ``AVATAR_VIDEO_COMPILE=1``,
``AVATAR_VIDEO_QUANT=fp8``, ``AVATAR_VIDEO_COMPILE_VAE=0/1``, ``AVATAR_VIDEO_KV_CACHE=fp8``,
``AVATAR_VIDEO_OFFLOAD=weights|weights+kv``, ``AVATAR_VIDEO_ATTENTION=sdpa|fa3|fa3-fp8`` give the defaults; CLI flags win.
"""
from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

log = logging.getLogger("engine.video.speed")

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0

# Numerics guard: largest allowed relative L2 error of each block's final latents against the reference
# eager path on the same seed and weights, and smallest PSNR (dB) of the decoded frames (GPU bench).
# fp32 (CPU tests): the eager refactors only change float64 -> fp32 RoPE and summation order.
# bf16 (GPU): the reference itself differs from fp32 by ~5e-3 (docs/benchmarks.md); compile re-fuses
# elementwise work (different rounding points); FP8 adds ~2.4e-2 per call (prototype, shared notes).
# FP8 KV caches: e4m3 keeps 3 mantissa bits, ~3 % per element, averaged down by attention over ~15k keys.
# Weight/KV streaming (offload) moves bytes only: same numbers as the mode without it.
# FP8 attention (fa3-fp8): e4m3 q, k, v and, in the kernel, e4m3 probabilities: ~1e-1 per call on synthetic
# inputs, which the layers average down (cuDNN's FP8 attention gave 1.7e-2 more in the final latents). The fp32
# (CPU) rows emulate the operands' quantisation only, not the kernel's e4m3 probabilities.
# FlashAttention-3 in bf16 (fa3) is the same maths as SDPA: the mode's own threshold applies.
THRESHOLDS = {
    "fp32": {"fast": 1e-5, "compile": 1e-4, "fp8": 6e-2, "fp8kv": 6e-2, "fp8+fp8kv": 8e-2, "fp8attn": 6e-2,
             "fp8+fp8attn": 8e-2},
    "bf16": {"fast": 2e-2, "compile": 3e-2, "fp8": 1.5e-1, "fp8kv": 1e-1, "fp8+fp8kv": 1.5e-1, "fp8attn": 1e-1,
             "fp8+fp8attn": 1.5e-1},
}
PSNR_MIN_DB = {"fast": 35.0, "compile": 30.0, "fp8": 22.0, "fp8kv": 25.0, "fp8+fp8kv": 22.0, "fp8attn": 25.0,
               "fp8+fp8attn": 22.0}
OFFLOAD_MODES = ("none", "weights", "weights+kv")
ATTENTION_MODES = ("sdpa", "fa3", "fa3-fp8")
# fa3-fp8 caches: the sink's largest |k| and |v| of a head map to FP8_MAX / KV_HEAD_HEADROOM, so window rows up
# to 4x louder than the sink still fit before saturating. e4m3 is a float format: the headroom costs no
# precision, only the smallest values (below ~1e-5 of the largest) move into subnormals.
KV_HEAD_HEADROOM = 4.0


class SpeedConfigError(ValueError):
    """A speed option cannot run here (FP8 without a Hopper GPU, unknown quant mode...)."""


def _env_bool(name: str, default: bool | None) -> bool | None:
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    return v.strip().lower() in ("1", "true", "yes", "on")


@dataclass
class SpeedOptions:
    fast: bool = False
    compile: bool = False
    quant: str = "none"  # none | fp8
    compile_vae: bool | None = None  # None: same as ``compile``
    compile_backend: str = "inductor"
    kv_cache: str = "model"  # model (the model dtype) | fp8
    offload: str = "none"  # none | weights | weights+kv
    attention: str = "sdpa"  # sdpa | fa3 | fa3-fp8
    _fp8_emulate: bool = False  # tests only: quantise like FP8 but multiply in fp32 (runs on CPU)
    _fa3_emulate: bool = False  # tests only: fa3 modes through an fp32 SDPA of the same (dequantised) operands

    def __post_init__(self):
        if self.quant not in ("none", "fp8"):
            raise SpeedConfigError(f"quant must be 'none' or 'fp8', not {self.quant!r}")
        if self.kv_cache not in ("model", "fp8"):
            raise SpeedConfigError(f"kv_cache must be 'model' or 'fp8', not {self.kv_cache!r}")
        if self.offload not in OFFLOAD_MODES:
            raise SpeedConfigError(f"offload_dit must be one of {', '.join(OFFLOAD_MODES)}, not {self.offload!r}")
        if self.attention not in ATTENTION_MODES:
            raise SpeedConfigError(f"attention (--attention / AVATAR_VIDEO_ATTENTION) must be one of "
                                   f"{', '.join(ATTENTION_MODES)}, not {self.attention!r}")

    @property
    def enabled(self) -> bool:
        return (self.fast or self.compile or self.quant != "none" or self.kv_cache != "model"
                or self.offload != "none" or self.attention != "sdpa")

    @property
    def vae_compiled(self) -> bool:
        return self.compile if self.compile_vae is None else bool(self.compile_vae)

    @property
    def label(self) -> str:
        if not self.enabled:
            return "reference"
        parts = ["compile" if self.compile else "fast"]
        if self.quant != "none":
            parts.append(self.quant)
        if self.kv_cache == "fp8":
            parts.append("fp8kv")
        if self.offload != "none":
            parts.append("offload-" + self.offload)
        if self.attention != "sdpa":
            parts.append(self.attention)
        if self.vae_compiled:
            parts.append("vae-compile")
        return "+".join(parts)

    @classmethod
    def from_env(cls, **overrides) -> "SpeedOptions":
        kw = dict(fast=_env_bool("AVATAR_VIDEO_FAST", False), compile=_env_bool("AVATAR_VIDEO_COMPILE", False),
                  quant=os.environ.get("AVATAR_VIDEO_QUANT", "none") or "none",
                  compile_vae=_env_bool("AVATAR_VIDEO_COMPILE_VAE", None),
                  kv_cache=os.environ.get("AVATAR_VIDEO_KV_CACHE", "model") or "model",
                  offload=os.environ.get("AVATAR_VIDEO_OFFLOAD", "none") or "none",
                  attention=os.environ.get("AVATAR_VIDEO_ATTENTION", "sdpa") or "sdpa")
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)


# -- FP8 ----------------------------------------------------------------------------------------------


def check_fp8(device) -> None:
    """Raise ``SpeedConfigError`` unless FP8 rowwise ``_scaled_mm`` can run on ``device``."""
    dev = torch.device(device)
    if dev.type != "cuda":
        raise SpeedConfigError(f"--quant fp8 needs an NVIDIA GPU of compute capability 9.0 or newer (Hopper); "
                               f"the engine runs on {dev.type}. Drop --quant fp8 (bf16/fp32 path).")
    if not torch.cuda.is_available():
        raise SpeedConfigError("--quant fp8: CUDA is not available in this PyTorch build / machine")
    cap = torch.cuda.get_device_capability(dev)
    if cap < (9, 0):
        raise SpeedConfigError(f"--quant fp8 needs compute capability >= 9.0 (Hopper: H100/H200 or newer); "
                               f"{torch.cuda.get_device_name(dev)} is {cap[0]}.{cap[1]}. Drop --quant fp8.")
    if not hasattr(torch, "_scaled_mm"):
        raise SpeedConfigError("--quant fp8: this PyTorch has no torch._scaled_mm")


def quantize_rowwise(w: torch.Tensor, work_device=None):
    """[N, K] weight -> (fp8 [N, K], dequant scale [1, N] fp32): one scale per output row. ``work_device``:
    compute there (a GPU for weights that live on the host) and return the results on ``w``'s device."""
    if work_device is not None and torch.device(work_device) != w.device:
        w8, s = quantize_rowwise(w.to(work_device))
        return w8.to(w.device), s.to(w.device)
    wf = w.float()
    scale = (wf.abs().amax(dim=1, keepdim=True) / FP8_MAX).clamp(min=1e-12)
    return (wf / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale.t().contiguous()


def _quant_act(x2: torch.Tensor):
    xf = x2.float()
    sx = (xf.abs().amax(dim=1, keepdim=True) / FP8_MAX).clamp(min=1e-12)
    return (xf / sx).clamp(-FP8_MAX, FP8_MAX).to(FP8), sx


def flin(x: torch.Tensor, p: tuple) -> torch.Tensor:
    """Linear on a packed weight: (weight, bias) -> plain F.linear in the weight dtype;
    (w8, scale_w, bias, emulate) -> FP8 rowwise (activation scales per row, computed here)."""
    if len(p) == 2:
        return F.linear(x.to(p[0].dtype), p[0], p[1])
    w8, sw, b, emulate = p
    shp = x.shape
    x8, sx = _quant_act(x.reshape(-1, shp[-1]))
    if emulate:
        out = (x8.float() * sx) @ (w8.float() * sw.t()).t()
        out = out.to(b.dtype) + b
    else:
        out = torch._scaled_mm(x8, w8.t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16,
                               use_fast_accum=True) + b.to(torch.bfloat16)
    return out.reshape(*shp[:-1], w8.shape[0])


def pack(mod) -> tuple:
    """The packed weight a speed-path function multiplies with: FP8 if ``quantize_dit`` replaced it."""
    p = getattr(mod, "_fp8", None)
    return p if p is not None else (mod.weight, mod.bias)


def fp8_targets(dit, memory: bool = False) -> list:
    """The linears quantised in FP8: self-attn q,k,v,o, cross-attn q,o, FFN, audio injector q,o (the big
    per-token GEMMs). Cross-attn k,v (text, once per clip) and the audio injector k,v (5 tokens per frame) are
    added with ``memory`` (they save ~2.6 GB, no time); the embeddings, head and AdaLN stay in the model dtype."""
    out = []
    for blk in dit.blocks:
        sa, ca = blk.self_attn, blk.cross_attn
        out += [sa.q, sa.k, sa.v, sa.o, ca.q, ca.o, blk.ffn[0], blk.ffn[2]]
        if memory:
            out += [ca.k, ca.v]
    for inj in dit.audio_injector.injector:
        out += [inj.q, inj.o]
        if memory:
            out += [inj.k, inj.v]
    return out


@torch.no_grad()
def quantize_dit(dit, emulate: bool = False, drop_weights: bool = True, memory: bool = False,
                 work_device=None) -> int:
    """Give each target linear an FP8 copy (``mod._fp8``); with ``drop_weights`` the bf16 weight is replaced by
    an empty tensor (memory), after which only the speed path can run the model. ``memory``: the extra k/v
    linears too (``fp8_targets``). ``work_device``: quantise there (weights kept on the host for offload).
    Returns bytes of FP8 weights."""
    total = 0
    for mod in fp8_targets(dit, memory):
        if getattr(mod, "_fp8", None) is not None:  # quantised already (memory=True after a plain call)
            continue
        w8, sw = quantize_rowwise(mod.weight, work_device)
        mod._fp8 = (w8, sw, mod.bias.detach(), emulate)
        total += w8.numel()
        if drop_weights:
            mod.weight = torch.nn.Parameter(torch.empty(0, dtype=mod.weight.dtype, device=mod.weight.device),
                                            requires_grad=False)
    dit._speed_quantized = True
    return total


# -- regional compile -------------------------------------------------------------------------------


class Regions:
    """Named pure functions of tensors, compiled once each (shared by every layer), eager on failure."""

    def __init__(self, fns: dict, compile: bool = False, backend: str = "inductor", dynamic: bool = False):
        self.eager = dict(fns)
        self.graphs = 0
        self.backend_name = backend
        self.compiled = {}
        self.warmed: set = set()
        self.fallbacks: dict[str, str] = {}
        if compile:
            for name, fn in fns.items():
                self.compiled[name] = torch.compile(fn, backend=self._backend, fullgraph=True, dynamic=dynamic)

    def _backend(self, gm, example_inputs):
        self.graphs += 1
        be = self.backend_name
        if callable(be):
            return be(gm, example_inputs)
        import torch._dynamo
        return torch._dynamo.lookup_backend(be)(gm, example_inputs)

    @property
    def active(self) -> bool:
        return bool(self.compiled)

    def __call__(self, name: str, *args):
        fn = self.compiled.get(name)
        if fn is None:
            return self.eager[name](*args)
        if name in self.warmed:
            return fn(*args)
        try:
            out = fn(*args)
        except Exception as exc:  # compile (not run) failures: first call of the region only
            msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            warnings.warn(f"torch.compile of the DiT region {name!r} failed ({msg}); running it eager",
                          RuntimeWarning, stacklevel=2)
            log.warning("compile of region %s failed, eager fallback: %s", name, msg)
            self.fallbacks[name] = msg
            del self.compiled[name]
            return self.eager[name](*args)
        self.warmed.add(name)
        return out

    def assert_no_recompiles(self, expected: int | None = None) -> None:
        """One graph per compiled region, whatever the number of layers and blocks that ran."""
        exp = len(self.compiled) if expected is None else expected
        if self.graphs > exp:
            raise AssertionError(f"DiT regions recompiled: {self.graphs} graphs for {exp} regions")


def compile_vae_decoder(vae, backend: str = "inductor", mode: str | None = None):
    """Wrap ``vae.decoder.forward`` in torch.compile (``mode``: torch.compile's, e.g. "max-autotune-no-cudagraphs";
    None = its default); any failure on a call -> eager from then on (warning)."""
    dec = vae.decoder
    if getattr(dec, "_speed_compiled", False):
        return vae
    eager = dec.forward
    import torch._dynamo
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 16)
    compiled = torch.compile(eager, backend=backend, dynamic=False, mode=mode)
    state = {"ok": True}

    def forward(*args, **kwargs):
        if state["ok"]:
            try:
                return compiled(*args, **kwargs)
            except Exception as exc:
                state["ok"] = False
                warnings.warn(f"torch.compile of the VAE decoder failed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); decoding eager",
                              RuntimeWarning, stacklevel=2)
        return eager(*args, **kwargs)

    dec.forward = forward
    dec._speed_compiled = True
    dec._speed_state = state
    return vae


# -- numerics guard -----------------------------------------------------------------------------------


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 2.0) -> float:
    """Frames in [-1, 1] (peak-to-peak 2)."""
    mse = float((a.double().cpu() - b.double().cpu()).pow(2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(peak * peak / mse)


def guard_kind(opts: SpeedOptions) -> str:
    if opts.attention == "fa3-fp8":  # its caches are FP8 too; FP8 q.k and p.v on top
        return "fp8+fp8attn" if opts.quant == "fp8" else "fp8attn"
    if opts.kv_cache == "fp8":
        return "fp8+fp8kv" if opts.quant == "fp8" else "fp8kv"
    return "fp8" if opts.quant == "fp8" else ("compile" if opts.compile else "fast")


def kv_placement(opts: "SpeedOptions", device):
    """(store dtype or None, home device or None) of the speed path's KV caches for these options."""
    store = FP8 if opts.kv_cache == "fp8" or opts.attention == "fa3-fp8" else None
    home = "cpu" if opts.offload == "weights+kv" and torch.device(device).type == "cuda" else None
    return store, home


def kv_scales(opts: "SpeedOptions") -> str:
    """How an FP8 cache scales its rows: "head" (one scale per layer and head: what FA3's FP8 kernel reads) for
    ``attention="fa3-fp8"``, else "token" (one per token and head, dequantised before attention)."""
    return "head" if opts.attention == "fa3-fp8" else "token"


def check_fa3(device, head_dim: int | None = None, fp8: bool = False) -> None:
    """Raise ``SpeedConfigError`` unless FlashAttention-3 can run on ``device``; with ``head_dim``, also run its
    kernel once on a few rows of that head dim (in e4m3 with ``fp8``): a wheel built for other head dims or
    dtypes fails here, at start, not in the first request."""
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        raise SpeedConfigError(f"--attention fa3 / fa3-fp8 needs an NVIDIA Hopper GPU (compute capability 9.0); the "
                               f"engine runs on {dev.type}. Use --attention sdpa.")
    cap = torch.cuda.get_device_capability(dev)
    if cap != (9, 0):
        raise SpeedConfigError(f"--attention fa3 / fa3-fp8: FlashAttention-3's kernels are built for Hopper "
                               f"(compute capability 9.0, H100/H200); {torch.cuda.get_device_name(dev)} is "
                               f"{cap[0]}.{cap[1]}. Use --attention sdpa.")
    try:
        import flash_attn_interface  # noqa: F401
    except ImportError as exc:
        raise SpeedConfigError(f"--attention fa3 / fa3-fp8 needs the flash_attn_3 package (FlashAttention-3), "
                               f"which is not importable here ({exc}). Build its wheel on the GPU machine with "
                               f"bench/fa3_build.sh and pip install it (docs/video.md), or use --attention sdpa.")
    if head_dim is None:
        return
    from engine.video.fp8_attention import fa3_attention
    x = torch.ones(1, 128, 1, head_dim, device=dev, dtype=torch.bfloat16)
    one = torch.ones(1, 1, device=dev)
    try:
        if fp8:
            x8 = x.to(FP8)
            fa3_attention(x8, x8, x8, one, one, one)
        else:
            fa3_attention(x, x, x)
        torch.cuda.synchronize(dev)
    except Exception as exc:  # e.g. "This flash attention build does not support headdim ..."
        raise SpeedConfigError(f"--attention {'fa3-fp8' if fp8 else 'fa3'}: the installed FlashAttention-3 cannot "
                               f"run this model's head dim {head_dim}{' in FP8' if fp8 else ''} "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}). "
                               f"Build it for that head dim (bench/fa3_build.sh) or use --attention sdpa.") from None


def window_attention(opts: "SpeedOptions", codec: "Regions | None" = None):
    """The speed path's window self-attention for ``opts.attention``: [B, L, H, d] q (model dtype) and the
    cache's keys and values -> [B, L, H, d]. For fa3-fp8 the keys and values are (e4m3 rows, [B, H] dequant
    scale) pairs, as a head-scaled ``FastKVCache`` returns them, and ``codec`` quantises q."""
    from engine.video.dit import sdpa
    from engine.video.fp8_attention import fa3_attention
    if opts.attention == "sdpa":
        return sdpa
    emulate = opts._fa3_emulate
    if opts.attention == "fa3":
        return sdpa if emulate else fa3_attention
    if codec is None:
        raise ValueError("attention fa3-fp8 needs the KV codec (kv_codec) to quantise q")

    def fa3_fp8(q, keys, vals):
        # a model-dtype cache (the several-GPU paths keep one) is quantised here, per call
        k8, dk = keys if isinstance(keys, tuple) else codec("quant_q", keys)
        v8, dv = vals if isinstance(vals, tuple) else codec("quant_q", vals)
        q8, dq = codec("quant_q", q)
        if emulate:  # the same e4m3 operands and scales through an fp32 SDPA (CPU tests)
            deq = [codec("dequant_head", x8, s, torch.float32) for x8, s in ((q8, dq), (k8, dk), (v8, dv))]
            return sdpa(*deq).to(q.dtype)
        return fa3_attention(q8, k8, v8, dq, dk, dv)
    return fa3_fp8


def dequant_tokens(x8: torch.Tensor, s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (x8.float() * s).to(dtype)


def kv_codec(opts: "SpeedOptions | None") -> "Regions":
    """FP8 KV quantise / dequantise, compiled with ``opts.compile`` (one fused pass each instead of ~7 eager
    kernels; dynamic in the token count, which differs for the reference keys, a block and the growing first
    window)."""
    return Regions({"quant": quant_tokens, "dequant": dequant_tokens, "quant_head": quant_head_static,
                    "quant_q": quant_heads, "dequant_head": dequant_heads},
                   compile=bool(opts is not None and opts.compile),
                   backend=getattr(opts, "compile_backend", "inductor"), dynamic=True)


def quant_tokens(x: torch.Tensor):
    """K or V [B, L, H, d] -> (fp8 e4m3 [B, L, H, d], fp32 dequant scale [B, L, H, 1]): one scale per token and
    head, so a loud head or token does not crush the others."""
    xf = x.float()
    s = (xf.abs().amax(dim=-1, keepdim=True) / FP8_MAX).clamp(min=1e-12)
    return (xf / s).clamp(-FP8_MAX, FP8_MAX).to(FP8), s


def head_scales(x: torch.Tensor, headroom: float = KV_HEAD_HEADROOM) -> torch.Tensor:
    """[B, L, H, d] -> fp32 [B, H] dequant scales that map the largest |x| of each head to FP8_MAX / headroom."""
    return (x.float().abs().amax(dim=(1, 3)) * (headroom / FP8_MAX)).clamp(min=1e-12)


def quant_head_static(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """K or V rows [B, L, H, d] -> e4m3 with the head's fixed dequant scale ``s`` [B, H]; saturates at FP8_MAX
    (a plain cast would turn anything beyond it into NaN)."""
    return (x.float() / s[:, None, :, None]).clamp(-FP8_MAX, FP8_MAX).to(FP8)


def quant_heads(x: torch.Tensor):
    """q [B, L, H, d] -> (e4m3, fp32 [B, H] dequant scale): one scale per head, from this call's values."""
    s = head_scales(x, 1.0)
    return (x.float() / s[:, None, :, None]).to(FP8), s


def dequant_heads(x8: torch.Tensor, s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (x8.float() * s[:, None, :, None]).to(dtype)


def check_numerics(per_block_err: list[float], opts: SpeedOptions, precision: str) -> list[str]:
    """Failures (empty = pass) of the per-block relative errors against THRESHOLDS."""
    lim = THRESHOLDS[precision][guard_kind(opts)]
    return [f"block {i}: rel. error {e:.3g} > {lim:.3g} ({opts.label}, {precision})"
            for i, e in enumerate(per_block_err) if not (e <= lim)]


@torch.no_grad()
def causal_latents(dit, opts: "SpeedOptions | None", context, ref, motion, audio, noises, steps: int = 4,
                   ref_shift: int = 10, regions: "Regions | None" = None, window_blocks: int = 4, sync=None,
                   on_block=None, codec: "Regions | None" = None, kv_stats: dict | None = None):
    """The LiveAvatar loop without encoders/VAE: prefill, then for each block noise in ``noises`` (each
    [B,16,nb,H_l,W_l]) ``steps`` Euler steps with one cache per step. ``opts`` None / not enabled = reference
    path. Returns (final latents per block, seconds per block, prefill seconds); ``sync`` (e.g.
    torch.cuda.synchronize) is called around the timed regions; ``on_block(b, latents)``, if given, right after
    block b's steps are queued (the bench decodes there); ``codec``: the FP8 KV codec to reuse (compiled once);
    ``kv_stats``: filled with the head-scaled caches' saturated shares at the end. Used by the numerics tests
    and the bench."""
    import time

    from engine.video.dit import BlockKVCache, Cond, CondCache, FastKVCache, TextKV, make_regions
    from engine.video.schedulers import EulerFlow, liveavatar_schedule
    sync = sync or (lambda: None)
    cfg = dit.config
    dtype = ref.dtype
    fast = opts is not None and opts.enabled
    nb, hl, wl = noises[0].shape[2:]
    fsl = (hl // 2) * (wl // 2)
    dev = ref.device
    ts, sig = liveavatar_schedule(steps)
    eu = EulerFlow(sig, ts)
    sync()
    t0 = time.perf_counter()
    cc = CondCache(cfg.num_layers, dtype)
    if fast:
        regions = regions if regions is not None else make_regions(opts)
        tkv = TextKV(dit, context)
        dit.prefill_cond_fast(cc, Cond(context, ref, motion), tkv)
    else:
        dit.prefill_cond(cc, Cond(context, ref, motion))
    sync()
    prefill_s = time.perf_counter() - t0
    length = window_blocks * nb * fsl
    if fast:
        store, home = kv_placement(opts, dev)
        codec = (codec or kv_codec(opts)) if store is not None else None
        caches = [FastKVCache(cfg.num_layers, 1, length, cc.k[0].shape[1], cfg.num_heads, cfg.head_dim, dtype, dev,
                              store, home, codec, kv_scales(opts)) for _ in range(steps)]
        cc.bind_all(dit, caches)
        dit.window_attention = window_attention(opts, codec)
    else:
        caches = [BlockKVCache(cfg.num_layers, 1, length, cfg.num_heads, cfg.head_dim, dtype, dev)
                  for _ in range(steps)]
    outs, secs = [], []
    for b, x in enumerate(noises):
        af = audio[..., 4 * nb * b:4 * nb * (b + 1)] if audio.shape[-1] >= 4 * nb * (b + 1) else audio[..., :4 * nb]
        sync()
        t0 = time.perf_counter()
        for i in range(steps):
            t = torch.full((1,), ts[i], device=dev)
            if fast:
                v = dit.forward_block_fast(x, t, tkv, af, nb * b, caches[i], cc, ref_shift, regions)
            else:
                v = dit.forward_block(x, t, context, af, nb * b, caches[i], cc, ref_shift)
            x = eu.step(v, i, x)
        if on_block is not None:
            on_block(b, x)
        sync()
        secs.append(time.perf_counter() - t0)
        outs.append(x)
    if kv_stats is not None and fast:
        for i, c in enumerate(caches):
            kv_stats.update({f"step{i}_{k}": v for k, v in c.saturated().items()})
    del caches
    if fast:
        from engine.video.dit import sdpa
        dit.window_attention = sdpa
    return outs, secs, prefill_s

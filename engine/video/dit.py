"""Wan2.2-S2V-14B DiT (offline clip mode) and the LiveAvatar causal block mode.

Module tree and parameter names are the released checkpoint's, so
``load_state_dict`` takes the original shards without renames. Numerics follow the
reference: the residual stream, modulation, gates, time embedding and head run in
fp32; linears run in the parameter dtype (bf16 on GPU); RoPE rotates in float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.video.config import S2VConfig
from engine.video.speed import Regions, flin, pack

# -- small pieces ---------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def layer_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Affine-free LayerNorm in fp32 (norm1/norm2/head.norm have no parameters)."""
    return F.layer_norm(x.float(), (x.shape[-1],), eps=eps)


def lin(mod: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return mod(x.to(mod.weight.dtype))


def lin32(mod: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x.float(), mod.weight.float(), None if mod.bias is None else mod.bias.float())


def sinusoidal_embedding(dim: int, t: torch.Tensor) -> torch.Tensor:
    """cos half first, float64, on the raw timestep value."""
    half = dim // 2
    pos = t.reshape(-1).to(torch.float64)
    ang = torch.outer(pos, torch.pow(10000, -torch.arange(half, dtype=torch.float64, device=t.device).div(half)))
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=1)


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[B, L, H, d] in, [B, L, H, d] out; scale 1/sqrt(d); no mask (every key is valid)."""
    dt = v.dtype
    out = F.scaled_dot_product_attention(q.transpose(1, 2).to(dt), k.transpose(1, 2).to(dt), v.transpose(1, 2))
    return out.transpose(1, 2)


# -- 3-D RoPE -------------------------------------------------------------------------------------


class Rope3D:
    """Interleaved-pair complex RoPE, channels split time | height | width."""

    def __init__(self, head_dim: int, max_pos: int, theta: float = 10000.0):
        c = head_dim // 2
        hw = head_dim // 6  # complex channels per spatial axis (21 for 128)
        self.split = (c - 2 * hw, hw, hw)
        self.max_pos = max_pos
        cpu = torch.device("cpu")  # explicit: models are built under torch.device("meta")
        self.omegas = [1.0 / torch.pow(torch.tensor(theta, dtype=torch.float64, device=cpu),
                                       torch.arange(0, 2 * n, 2, dtype=torch.float64, device=cpu) / (2 * n))
                       for n in self.split]

    def freqs(self, fpos, hpos, wpos, device) -> torch.Tensor:
        """Per-token exp(i·p·ω) for the (f, h, w) row-major grid of the given axis positions -> [L, c] complex128."""
        for name, pos in (("time", fpos), ("height", hpos), ("width", wpos)):
            if max(abs(int(p)) for p in pos) >= self.max_pos:
                raise ValueError(f"RoPE {name} position {max(abs(int(p)) for p in pos)} exceeds the table "
                                 f"({self.max_pos}); the stream is too long for this config's rope_max_pos")
        parts = []
        for pos, om in zip((fpos, hpos, wpos), self.omegas):
            ang = torch.outer(torch.as_tensor(pos, dtype=torch.float64, device=om.device), om)
            parts.append(torch.polar(torch.ones_like(ang), ang))
        nf, nh, nw = len(fpos), len(hpos), len(wpos)
        ft = parts[0][:, None, None, :].expand(nf, nh, nw, -1)
        ht = parts[1][None, :, None, :].expand(nf, nh, nw, -1)
        wt = parts[2][None, None, :, :].expand(nf, nh, nw, -1)
        return torch.cat([ft, ht, wt], dim=-1).reshape(nf * nh * nw, -1).to(device)

    @staticmethod
    def apply(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        """x [B, L, H, d]; freqs [L, d/2] complex128."""
        b, l, h, d = x.shape
        xc = torch.view_as_complex(x.to(torch.float64).reshape(b, l, h, d // 2, 2))
        return torch.view_as_real(xc * freqs[None, :, None, :]).reshape(b, l, h, d).type_as(x)


def spread(start: int, extent: int, count: int) -> list[int]:
    """Truncated evenly spaced samples (Wan's rope_precompute): negative starts give negative positions."""
    if count == 1:
        return [start]
    if start >= 0:
        return [int(v) for v in np.linspace(start, start + extent - 1, count)]
    return [-int(v) for v in np.linspace(-start, -start - extent + 1, count)]


# -- attention blocks -----------------------------------------------------------------------------


class Attention(nn.Module):
    """q, k, v, o + RMSNorm over all heads on q and k (released names)."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)

    def heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.num_heads, -1))

    def project_q(self, x):
        return self.heads(self.norm_q(lin(self.q, x)))

    def project_kv(self, c):
        return self.heads(self.norm_k(lin(self.k, c))), self.heads(lin(self.v, c))

    def cross(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        k, v = self.project_kv(context)
        return lin(self.o, sdpa(self.project_q(x), k, v).flatten(2))


@dataclass
class Segment:
    """Tokens [start, end) modulated with one 6-vector set m [B, 6, D] (fp32)."""
    start: int
    end: int
    e0: torch.Tensor


class SelfAttnContext:
    """What a block's self-attention needs besides x: RoPE and an optional K/V hook (causal mode)."""

    def __init__(self, freqs: torch.Tensor, hook=None):
        self.freqs = freqs
        self.hook = hook  # hook(layer, q_roped, k_normed, k_roped, v) -> attention output [B, L, H, d]


class DiTBlock(nn.Module):
    def __init__(self, cfg: S2VConfig, index: int):
        super().__init__()
        self.index = index
        self.eps = cfg.eps
        self.modulation = nn.Parameter(torch.randn(1, 6, cfg.dim) / cfg.dim ** 0.5)
        self.self_attn = Attention(cfg.dim, cfg.num_heads, cfg.eps)
        self.norm3 = nn.LayerNorm(cfg.dim, eps=cfg.eps, elementwise_affine=True)
        self.cross_attn = Attention(cfg.dim, cfg.num_heads, cfg.eps)
        self.ffn = nn.Sequential(nn.Linear(cfg.dim, cfg.ffn_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.ffn_dim, cfg.dim))

    def _mod(self, h: torch.Tensor, segs: list[Segment], shift: int, scale: int) -> torch.Tensor:
        parts = []
        for s in segs:
            m = self.modulation.float() + s.e0
            parts.append(h[:, s.start:s.end] * (1 + m[:, scale:scale + 1]) + m[:, shift:shift + 1])
        return torch.cat(parts, dim=1)

    def _gate(self, y: torch.Tensor, segs: list[Segment], gate: int) -> torch.Tensor:
        parts = []
        for s in segs:
            m = self.modulation.float() + s.e0
            parts.append(y[:, s.start:s.end].float() * m[:, gate:gate + 1])
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor, segs: list[Segment], context: torch.Tensor, sa: SelfAttnContext):
        a = self.self_attn
        h = self._mod(layer_norm(x, self.eps), segs, 0, 1)
        q = a.project_q(h)
        k_n, v = a.project_kv(h)
        q_r, k_r = Rope3D.apply(q, sa.freqs), Rope3D.apply(k_n, sa.freqs)
        attn = sa.hook(self.index, q_r, k_n, k_r, v) if sa.hook else sdpa(q_r, k_r, v)
        x = x + self._gate(lin(a.o, attn.flatten(2)), segs, 2)
        n3 = self.norm3
        h = F.layer_norm(x.float(), (x.shape[-1],), n3.weight.float(), n3.bias.float(), n3.eps)
        x = x + self.cross_attn.cross(h, context).float()
        h = self._mod(layer_norm(x, self.eps), segs, 3, 4)
        y = lin(self.ffn[2], self.ffn[1](lin(self.ffn[0], h)))
        return x + self._gate(y, segs, 5)


class Head(nn.Module):
    def __init__(self, cfg: S2VConfig):
        super().__init__()
        self.eps = cfg.eps
        self.modulation = nn.Parameter(torch.randn(1, 2, cfg.dim) / cfg.dim ** 0.5)
        self.head = nn.Linear(cfg.dim, cfg.out_dim * math.prod(cfg.patch_size))

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        m = self.modulation.float() + e.float()[:, None]
        return lin(self.head, layer_norm(x, self.eps) * (1 + m[:, 1:2]) + m[:, 0:1])


# -- audio ---------------------------------------------------------------------------------------


class CausalConv1d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.pad = kernel - 1
        self.conv = nn.Conv1d(cin, cout, kernel, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T] fp32
        x = F.pad(x, (self.pad, 0), mode="replicate")
        c = self.conv
        return F.conv1d(x, c.weight.float(), c.bias.float(), stride=c.stride)


class MotionEncoderTC(nn.Module):
    """casual_audio_encoder.encoder: local (4 tokens + padding token) and global branches."""

    def __init__(self, in_dim: int, hidden: int, num_tokens: int):
        super().__init__()
        self.num_tokens = num_tokens
        self.conv1_local = CausalConv1d(in_dim, hidden // 4 * num_tokens)
        self.conv1_global = CausalConv1d(in_dim, hidden // 4)
        self.conv2 = CausalConv1d(hidden // 4, hidden // 2, stride=2)
        self.conv3 = CausalConv1d(hidden // 2, hidden, stride=2)
        self.final_linear = nn.Linear(hidden, hidden)
        self.padding_tokens = nn.Parameter(torch.zeros(1, 1, 1, hidden))

    @staticmethod
    def _ln_act(x: torch.Tensor) -> torch.Tensor:  # [B, C, T] -> same; LayerNorm over C
        return F.silu(F.layer_norm(x.transpose(1, 2), (x.shape[1],), eps=1e-6)).transpose(1, 2)

    def _tail(self, x):
        x = self._ln_act(self.conv2(self._ln_act(x)))
        return self._ln_act(self.conv3(x)).transpose(1, 2)  # [B, T', C]

    def forward(self, feat: torch.Tensor):  # [B, T, in_dim] fp32
        b = feat.shape[0]
        x = feat.transpose(1, 2)
        loc = self.conv1_local(x)  # [B, n*C, T] -> n contiguous channel groups become streams
        loc = loc.unflatten(1, (self.num_tokens, -1)).flatten(0, 1)
        loc = self._tail(loc).unflatten(0, (b, self.num_tokens)).transpose(1, 2)  # [B, T', n, C]
        pad = self.padding_tokens.float().expand(b, loc.shape[1], 1, -1)
        local = torch.cat([loc, pad], dim=2)
        glob = lin32(self.final_linear, self._tail(self.conv1_global(x)))  # [B, T', C]
        return glob, local


class CausalAudioEncoder(nn.Module):
    def __init__(self, cfg: S2VConfig):
        super().__init__()
        self.weights = nn.Parameter(torch.ones(1, cfg.audio_num_layers, 1, 1) * 0.01)
        self.encoder = MotionEncoderTC(cfg.audio_dim, cfg.dim, cfg.num_audio_token)

    def forward(self, feats: torch.Tensor):
        """feats [B, layers, audio_dim, T] (wav2vec2 hidden states at the video fps) -> (g [B,T',D], A [B,T',5,D])."""
        w = F.silu(self.weights.float())
        mixed = ((feats.float() * w) / w.sum(dim=1, keepdim=True)).sum(dim=1)  # [B, audio_dim, T]
        return self.encoder(mixed.transpose(1, 2))


class AdaLN(nn.Module):
    """diffusers AdaLayerNorm(chunk_dim=1): shift first, then scale; LayerNorm eps 1e-5, no affine."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 2 * dim)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        shift, scale = lin(self.linear, F.silu(g)).float().chunk(2, dim=-1)
        return F.layer_norm(x.float(), (x.shape[-1],), eps=1e-5) * (1 + scale[:, None]) + shift[:, None]


class AudioInjector(nn.Module):
    def __init__(self, cfg: S2VConfig):
        super().__init__()
        n = len(cfg.audio_inject_layers)
        self.injector = nn.ModuleList(Attention(cfg.dim, cfg.num_heads, cfg.eps) for _ in range(n))
        self.injector_adain_layers = nn.ModuleList(AdaLN(cfg.dim) for _ in range(n))
        self.block_to_slot = {blk: j for j, blk in enumerate(sorted(cfg.audio_inject_layers))}


class FramePacker(nn.Module):
    def __init__(self, cfg: S2VConfig):
        super().__init__()
        self.proj = nn.Conv3d(cfg.in_dim, cfg.dim, (1, 2, 2), stride=(1, 2, 2))
        self.proj_2x = nn.Conv3d(cfg.in_dim, cfg.dim, (2, 4, 4), stride=(2, 4, 4))
        self.proj_4x = nn.Conv3d(cfg.in_dim, cfg.dim, (4, 8, 8), stride=(4, 8, 8))



# -- speed path: pure functions of tensors (engine/video/speed.py compiles them per region) -------------


def rope_tables(freqs: torch.Tensor):
    """complex128 exp(i·p·ω) [L, d/2] -> (cos, sin) fp32 tables, computed once per call for every layer."""
    return freqs.real.float().contiguous(), freqs.imag.float().contiguous()


def rope_fp32(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Interleaved-pair rotation of x [B, L, H, d] in fp32 (same result as Rope3D.apply up to fp32 rounding)."""
    xf = x.float().unflatten(-1, (-1, 2))
    x0, x1 = xf[..., 0], xf[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).flatten(-2).to(x.dtype)


def rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * w


def region_pre(x, e0, modul, pq, pk, pv, nq, nk, cos, sin, nh: int, eps: float):
    """norm1 + modulation + q/k/v + RMSNorm + RoPE -> (q roped, k normed, k roped, v), heads split."""
    m = modul.float() + e0
    h = F.layer_norm(x.float(), (x.shape[-1],), eps=eps) * (1 + m[:, 1:2]) + m[:, 0:1]
    q = rms(flin(h, pq), nq, eps).unflatten(-1, (nh, -1))
    k = rms(flin(h, pk), nk, eps).unflatten(-1, (nh, -1))
    v = flin(h, pv).unflatten(-1, (nh, -1))
    return rope_fp32(q, cos, sin), k, rope_fp32(k, cos, sin), v


def region_post(x, attn, e0, modul, po, n3w, n3b, cq, cnq, tk, tv, co, f0, f2, nh: int, eps: float):
    """o-proj + gate, cross-attention on the precomputed text K/V, FFN + gate (everything but self-attn)."""
    m = modul.float() + e0
    x = x + flin(attn.flatten(2), po).float() * m[:, 2:3]
    h = F.layer_norm(x.float(), (x.shape[-1],), n3w.float(), n3b.float(), eps)
    q = rms(flin(h, cq), cnq, eps).unflatten(-1, (nh, -1))
    x = x + flin(sdpa(q, tk, tv).flatten(2), co).float()
    h = F.layer_norm(x, (x.shape[-1],), eps=eps) * (1 + m[:, 4:5]) + m[:, 3:4]
    y = flin(F.gelu(flin(h, f0), approximate="tanh"), f2)
    return x + y.float() * m[:, 5:6]


def region_inject(x, g, a, pada, pq, nq, pk, nk, pv, po, nh: int, eps: float):
    """Audio injection on a block of noisy tokens only (x [B, nf·fsl, D]; g [B, nf, D]; a [B, nf, 5, D])."""
    b, nf = a.shape[:2]
    noisy = x.reshape(b * nf, x.shape[1] // nf, -1)
    shift, scale = flin(F.silu(g.reshape(b * nf, -1)), pada).float().chunk(2, dim=-1)
    h = F.layer_norm(noisy.float(), (noisy.shape[-1],), eps=1e-5) * (1 + scale[:, None]) + shift[:, None]
    ctx = a.reshape(b * nf, a.shape[2], -1).float()
    q = rms(flin(h, pq), nq, eps).unflatten(-1, (nh, -1))
    k = rms(flin(ctx, pk), nk, eps).unflatten(-1, (nh, -1))
    v = flin(ctx, pv).unflatten(-1, (nh, -1))
    res = flin(sdpa(q, k, v).flatten(2), po)
    return x + res.float().reshape(x.shape)


def region_ref_rope(k_ref, cos, sin):
    """The sink's reference keys roped at the block's reference position: one fused kernel, not the ~10 eager
    ones of ``rope_fp32`` (they ran once per layer and step, ~4 % of a compiled FP8 block on an H200)."""
    return rope_fp32(k_ref, cos, sin)


REGIONS = {"pre": region_pre, "post": region_post, "inject": region_inject, "ref_rope": region_ref_rope}


def make_regions(opts) -> Regions:
    """The four regions of a layer, compiled when ``opts.compile`` (one graph each for all 40 layers)."""
    return Regions(REGIONS, compile=bool(opts is not None and opts.compile),
                   backend=getattr(opts, "compile_backend", "inductor"))


class TextKV:
    """Cross-attention K/V of the text context for every layer: computed once per clip, reused by every
    block and step (the reference recomputes them in every call)."""

    def __init__(self, dit: "WanS2VTransformer", context: torch.Tensor):
        self.context = context
        eps = dit.config.eps
        self.k, self.v = [], []
        with torch.no_grad():
            for blk in dit.streamed_blocks():
                ca = blk.cross_attn
                self.k.append(rms(flin(context, pack(ca.k)), ca.norm_k.weight, eps).unflatten(-1, (ca.num_heads, -1)))
                self.v.append(flin(context, pack(ca.v)).unflatten(-1, (ca.num_heads, -1)))

# -- the model ------------------------------------------------------------------------------------


@dataclass
class Cond:
    """Per-request conditioning shared by all steps: text context, ref and motion latents, pose."""
    context: torch.Tensor  # [B, text_len, D] after text_embedding
    ref: torch.Tensor  # [B, 16, 1, H_l, W_l]
    motion: torch.Tensor  # [B, 16, M, H_l, W_l] (M <= 19; zero-padded in front)


def _view_key(x: torch.Tensor) -> tuple:
    """What a tensor view reads: its storage, offset, shape and strides, and the version of its data."""
    return (x.untyped_storage().data_ptr(), x.storage_offset(), tuple(x.shape), x.stride(), x.dtype, x.device,
            x._version)


class WanS2VTransformer(nn.Module):
    """``WanModel_S2V`` / ``CausalWanModel_S2V`` (identical parameters)."""

    def __init__(self, cfg: S2VConfig):
        super().__init__()
        self.config = cfg
        d = cfg.dim
        self.patch_embedding = nn.Conv3d(cfg.in_dim, d, cfg.patch_size, stride=cfg.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.blocks = nn.ModuleList(DiTBlock(cfg, i) for i in range(cfg.num_layers))
        self.head = Head(cfg)
        self.cond_encoder = nn.Conv3d(cfg.cond_dim, d, cfg.patch_size, stride=cfg.patch_size)
        self.trainable_cond_mask = nn.Embedding(3, d)
        self.casual_audio_encoder = CausalAudioEncoder(cfg)
        self.audio_injector = AudioInjector(cfg)
        self.frame_packer = FramePacker(cfg)
        self.rope = Rope3D(cfg.head_dim, cfg.rope_max_pos)
        # The speed path's window self-attention ([B, L, H, d] q, keys, values -> [B, L, H, d]), called eager
        # between the compiled regions, so another kernel can stand in without touching the compiled graphs.
        self.window_attention = sdpa

    # -- embeddings ----------------------------------------------------------------------------------
    def embed_text(self, t5_out: torch.Tensor) -> torch.Tensor:
        """T5 rows of the real tokens, zero-padded to text_len (unmasked)."""
        te = self.text_embedding
        ctx = t5_out.to(te[0].weight.dtype)
        if ctx.shape[1] < self.config.text_len:
            ctx = F.pad(ctx, (0, 0, 0, self.config.text_len - ctx.shape[1]))
        return lin(te[2], te[1](lin(te[0], ctx)))

    def time_vectors(self, t: torch.Tensor):
        """t [B] raw timestep -> (e [B, D], e0 [B, 6, D]) in fp32."""
        te = self.time_embedding
        s = sinusoidal_embedding(self.config.freq_dim, t).float()
        e = lin32(te[2], F.silu(lin32(te[0], s)))
        e0 = lin32(self.time_projection[1], F.silu(e)).unflatten(1, (6, self.config.dim))
        return e, e0

    def _patch(self, conv: nn.Conv3d, lat: torch.Tensor) -> torch.Tensor:
        return conv(lat.to(conv.weight.dtype)).flatten(2).transpose(1, 2).float()

    def _mask(self, i: int) -> torch.Tensor:
        return self.trainable_cond_mask.weight[i].float()

    def audio_tokens(self, feats: torch.Tensor):
        """wav2vec2 features for this call's video frames [B, L, C, 4F] -> per latent frame (g [B,F,D], A [B,F,5,D])."""
        mf, ml = self.config.motion_frames
        feats = torch.cat([feats[..., :1].expand(*feats.shape[:-1], mf), feats], dim=-1)
        g, a = self.casual_audio_encoder(feats)
        return g[:, ml:], a[:, ml:]

    def noisy_tokens(self, x: torch.Tensor, pose: torch.Tensor | None) -> torch.Tensor:
        tok = self._patch(self.patch_embedding, x)
        pose = torch.zeros_like(x) if pose is None else pose
        return tok + self._patch(self.cond_encoder, pose) + self._mask(0)

    def cond_tokens(self, ref: torch.Tensor, motion: torch.Tensor | None):
        """[ref | motion (1x, 2x, 4x)] tokens with mask ids 1/2 and their RoPE.
        Returns (tokens, per-segment position grids, ref token count)."""
        _, _, _, hl, wl = ref.shape
        hp, wp = hl // 2, wl // 2
        ref_tok = self._patch(self.patch_embedding, ref) + self._mask(1)
        grids = [([30], list(range(hp)), list(range(wp)))]
        toks = [ref_tok]
        if motion is not None:
            n = sum((1, 2, 16))
            buf = torch.zeros(*motion.shape[:2], n, hl, wl, dtype=motion.dtype, device=motion.device)
            k = min(n, motion.shape[2])
            if k:
                buf[:, :, -k:] = motion[:, :, -k:]
            m4, m2, m1 = buf.split([16, 2, 1], dim=2)
            fp = self.frame_packer
            toks += [self._patch(fp.proj, m1) + self._mask(2), self._patch(fp.proj_2x, m2) + self._mask(2),
                     self._patch(fp.proj_4x, m4) + self._mask(2)]
            grids += [([-1], list(range(hp)), list(range(wp))),
                      (spread(-3, 2, 1), spread(0, hp, hl // 4), spread(0, wp, wl // 4)),
                      (spread(-19, 16, 4), spread(0, hp, hl // 8), spread(0, wp, wl // 8))]
        return torch.cat(toks, dim=1), grids, ref_tok.shape[1]

    def grid_freqs(self, grids, device) -> torch.Tensor:
        return torch.cat([self.rope.freqs(*g, device=device) for g in grids], dim=0)

    def _inject(self, x: torch.Tensor, block: int, n_noisy: int, g: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        j = self.audio_injector.block_to_slot.get(block)
        if j is None:
            return x
        b, nf = a.shape[:2]
        noisy = x[:, :n_noisy].reshape(b * nf, n_noisy // nf, -1)
        h = self.audio_injector.injector_adain_layers[j](noisy, g.reshape(b * nf, -1))
        res = self.audio_injector.injector[j].cross(h, a.reshape(b * nf, a.shape[2], -1).to(h.dtype))
        return torch.cat([x[:, :n_noisy] + res.float().reshape(b, n_noisy, -1), x[:, n_noisy:]], dim=1)

    def unpatchify(self, out: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        f, h, w = grid
        pt, ph, pw = self.config.patch_size
        c = self.config.out_dim
        u = out.reshape(out.shape[0], f, h, w, pt, ph, pw, c)
        return torch.einsum("bfhwpqrc->bcfphqwr", u).reshape(out.shape[0], c, f * pt, h * ph, w * pw)

    # -- offline S2V forward ----------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Cond, audio_feats: torch.Tensor,
                pose: torch.Tensor | None = None, drop_motion: bool = False) -> torch.Tensor:
        """x [B,16,F,H_l,W_l] noisy latents; t [B] timestep; audio_feats [B,L,C,4F]. Returns velocity (fp32)."""
        b, _, nf, hl, wl = x.shape
        hp, wp = hl // 2, wl // 2
        noisy = self.noisy_tokens(x, pose)
        n0 = noisy.shape[1]
        ctok, cgrids, _ = self.cond_tokens(cond.ref, None if drop_motion else cond.motion)
        tokens = torch.cat([noisy, ctok], dim=1)
        freqs = self.grid_freqs([(list(range(nf)), list(range(hp)), list(range(wp)))] + cgrids, x.device)
        e, e0 = self.time_vectors(t)
        segs = [Segment(0, n0, e0)]
        if self.config.zero_timestep:
            segs.append(Segment(n0, tokens.shape[1], self.time_vectors(torch.zeros_like(t))[1]))
        else:
            segs = [Segment(0, tokens.shape[1], e0)]
        g, a = self.audio_tokens(audio_feats)
        sa = SelfAttnContext(freqs)
        for blk in self.blocks:
            tokens = blk(tokens, segs, cond.context, sa)
            tokens = self._inject(tokens, blk.index, n0, g, a)
        out = self.head(tokens[:, :n0], e)
        return self.unpatchify(out.float(), (nf, hp, wp))

    # -- the shared Wan 14B core alone (plain T2V forward): for checks against diffusers ---
    def forward_core(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Patch embed -> blocks (one modulation segment, RoPE 0..F-1, no audio, no cond tokens) -> head."""
        b, _, nf, hl, wl = x.shape
        hp, wp = hl // 2, wl // 2
        tokens = self._patch(self.patch_embedding, x)
        freqs = self.rope.freqs(list(range(nf)), list(range(hp)), list(range(wp)), x.device)
        e, e0 = self.time_vectors(t)
        segs = [Segment(0, tokens.shape[1], e0)]
        sa = SelfAttnContext(freqs)
        for blk in self.blocks:
            tokens = blk(tokens, segs, context, sa)
        return self.unpatchify(self.head(tokens, e).float(), (nf, hp, wp))

    # -- LiveAvatar causal mode ----------------------------------------------------------
    @torch.no_grad()
    def prefill_cond(self, cache: "CondCache", cond: Cond) -> None:
        """Sink forward over [ref | motion] at t=0: store every layer's normed un-roped K and V."""
        tokens, grids, n_ref = self.cond_tokens(cond.ref, cond.motion)
        freqs = self.grid_freqs(grids, tokens.device)
        _, e0 = self.time_vectors(torch.zeros(tokens.shape[0], device=tokens.device))
        segs = [Segment(0, tokens.shape[1], e0)]

        def hook(layer, q_r, k_n, k_r, v):
            cache.k[layer], cache.v[layer] = k_n.to(cache.dtype), v.to(cache.dtype)
            return sdpa(q_r, k_r, v)

        sa = SelfAttnContext(freqs, hook)
        for blk in self.blocks:
            tokens = blk(tokens, segs, cond.context, sa)
        cache.grids, cache.n_ref = grids, n_ref

    def block_inputs(self, x: torch.Tensor, t: torch.Tensor, audio_feats: torch.Tensor, frame0: int,
                     cond: "CondCache", ref_shift: int, pose: torch.Tensor | None):
        """What a causal block's forward needs before its layers (one place for the one-rank and the
        sequence-parallel forward): sizes, noisy tokens, their RoPE and the sink's (reference frame at
        max(30, frame0 + δ)), time vectors, the ring write position and the audio tokens."""
        _, _, nb, hl, wl = x.shape
        hp, wp = hl // 2, wl // 2
        tokens = self.noisy_tokens(x, pose)
        freqs = self.rope.freqs(list(range(frame0, frame0 + nb)), list(range(hp)), list(range(wp)), x.device)
        ref_t = max(30, frame0 + ref_shift)
        cgrids = [([ref_t], *cond.grids[0][1:])] + list(cond.grids[1:])
        cfreqs = self.grid_freqs(cgrids, x.device)
        e, e0 = self.time_vectors(t)
        g, a = self.audio_tokens(audio_feats)
        return nb, hp, wp, tokens, tokens.shape[1], freqs, cfreqs, e, e0, frame0 * hp * wp, g, a

    @torch.no_grad()
    def forward_block(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, audio_feats: torch.Tensor,
                      frame0: int, kv: "BlockKVCache", cond: "CondCache", ref_shift: int,
                      pose: torch.Tensor | None = None) -> torch.Tensor:
        """One block of latent frames [B,16,nb,H_l,W_l] at absolute latent frame ``frame0``.
        ``kv`` is this denoising step's ring cache; ``ref_shift`` is LiveAvatar's δ in {4..30}."""
        nb, hp, wp, tokens, n0, freqs, cfreqs, e, e0, start, g, a = self.block_inputs(
            x, t, audio_feats, frame0, cond, ref_shift, pose)
        segs = [Segment(0, n0, e0)]

        def hook(layer, q_r, k_n, k_r, v):
            keys, vals = kv.write_and_window(layer, start, k_r, v)
            ck = Rope3D.apply(cond.k[layer], cfreqs)
            return sdpa(q_r, torch.cat([keys, ck.to(keys.dtype)], 1), torch.cat([vals, cond.v[layer]], 1))

        sa = SelfAttnContext(freqs, hook)
        for blk in self.blocks:
            tokens = blk(tokens, segs, context, sa)
            tokens = self._inject(tokens, blk.index, n0, g, a)
        out = self.head(tokens, e)
        return self.unpatchify(out.float(), (nb, hp, wp))


    # -- speed path (engine/video/speed.py): same math as prefill_cond / forward_block -------------------
    def streamed_blocks(self):
        """The blocks in order; with a ``LayerStreamer`` attached (``engine/video/offload.py``) each block's
        weights (and its audio injector's) are on the device only while the loop body runs."""
        st = getattr(self, "_streamer", None)
        for blk in self.blocks:
            if st is None:
                yield blk
                continue
            st.acquire(blk.index)
            try:
                yield blk
            finally:
                st.release(blk.index)

    def _pre_args(self, blk: DiTBlock, x, e0, cos, sin):
        a = blk.self_attn
        return (x, e0, blk.modulation, pack(a.q), pack(a.k), pack(a.v), a.norm_q.weight, a.norm_k.weight,
                cos, sin, a.num_heads, blk.eps)

    def _post_args(self, blk: DiTBlock, x, attn, e0, tkv: TextKV):
        ca, i = blk.cross_attn, blk.index
        return (x, attn, e0, blk.modulation, pack(blk.self_attn.o), blk.norm3.weight, blk.norm3.bias,
                pack(ca.q), ca.norm_q.weight, tkv.k[i], tkv.v[i], pack(ca.o), pack(blk.ffn[0]), pack(blk.ffn[2]),
                ca.num_heads, blk.eps)

    def _inject_fast(self, regions: Regions, x, block: int, g, a):
        j = self.audio_injector.block_to_slot.get(block)
        if j is None:
            return x
        inj, ada = self.audio_injector.injector[j], self.audio_injector.injector_adain_layers[j]
        return regions("inject", x, g, a, pack(ada.linear), pack(inj.q), inj.norm_q.weight, pack(inj.k),
                       inj.norm_k.weight, pack(inj.v), pack(inj.o), inj.num_heads, self.config.eps)

    @torch.no_grad()
    def prefill_cond_fast(self, cache: "CondCache", cond: Cond, tkv: TextKV | None = None,
                          regions: Regions | None = None) -> None:
        """``prefill_cond`` on the speed path's eager functions (fp32 RoPE tables, text K/V once); the prefill's
        token count differs from a block's, so it never runs the compiled regions (no recompiles)."""
        tkv = tkv if tkv is not None else TextKV(self, cond.context)
        tokens, grids, n_ref = self.cond_tokens(cond.ref, cond.motion)
        cos, sin = rope_tables(self.grid_freqs(grids, tokens.device))
        _, e0 = self.time_vectors(torch.zeros(tokens.shape[0], device=tokens.device))
        for blk in self.streamed_blocks():
            q_r, k_n, k_r, v = region_pre(*self._pre_args(blk, tokens, e0, cos, sin))
            cache.k[blk.index], cache.v[blk.index] = k_n.to(cache.dtype), v.to(cache.dtype)
            tokens = region_post(*self._post_args(blk, tokens, sdpa(q_r, k_r, v), e0, tkv))
        cache.grids, cache.n_ref = grids, n_ref

    def _audio_tokens_once(self, feats: torch.Tensor):
        """Speed path: a block's audio tokens are the same for all its steps, so they are computed once per block
        (the reference path recomputes them every step). Keyed by the memory the features view and its version
        counter, so a caller that slices the same features again for each step (the TPP ranks) hits too, and an
        in-place write to them misses. The memo holds the view, so its storage cannot be freed and reused."""
        key = _view_key(feats)
        memo = self.__dict__.get("_audio_memo")
        if memo is None or memo[0] != key:
            memo = self.__dict__["_audio_memo"] = (key, self.audio_tokens(feats), feats)
        return memo[1]

    def _noisy_tokens_fast(self, x: torch.Tensor, pose: torch.Tensor | None) -> torch.Tensor:
        """``noisy_tokens`` with the no-pose term (the condition encoder applied to zeros) computed once per
        shape: it is a constant, and the reference path convolved zeros every step."""
        if pose is not None:
            return self.noisy_tokens(x, pose)
        # zeros through the encoder give its bias; the weight is keyed too, and the mask row added to it
        key = (tuple(x.shape), x.dtype, x.device, *(_view_key(p) for p in (
            self.cond_encoder.weight, self.cond_encoder.bias, self.trainable_cond_mask.weight)))
        memo = self.__dict__.get("_no_pose_memo")
        if memo is None or memo[0] != key:
            memo = self.__dict__["_no_pose_memo"] = (key, self._patch(self.cond_encoder, torch.zeros_like(x))
                                                     + self._mask(0))
        return self._patch(self.patch_embedding, x) + memo[1]

    @torch.no_grad()
    def forward_block_fast(self, x: torch.Tensor, t: torch.Tensor, tkv: TextKV, audio_feats: torch.Tensor,
                           frame0: int, kv: "FastKVCache", cond: "CondCache", ref_shift: int,
                           regions: Regions, pose: torch.Tensor | None = None) -> torch.Tensor:
        """``forward_block`` on the speed path: RoPE tables once per call, sink K/V inside ``kv`` (only the
        reference keys are re-roped per call), text K/V from ``tkv``, layer regions through ``regions``."""
        b, _, nb, hl, wl = x.shape
        hp, wp = hl // 2, wl // 2
        fsl = hp * wp
        tokens = self._noisy_tokens_fast(x, pose)
        cos, sin = rope_tables(self.rope.freqs(list(range(frame0, frame0 + nb)), list(range(hp)),
                                               list(range(wp)), x.device))
        g0 = cond.grids[0]
        rcos, rsin = rope_tables(self.rope.freqs([max(30, frame0 + ref_shift)], g0[1], g0[2], x.device))
        kv.bind(self, cond)
        e, e0 = self.time_vectors(t)
        start = frame0 * fsl
        g, a = self._audio_tokens_once(audio_feats)
        for blk in self.streamed_blocks():
            i = blk.index
            q_r, _, k_r, v = regions("pre", *self._pre_args(blk, tokens, e0, cos, sin))
            kv.write_ref(i, regions("ref_rope", cond.k[i][:, :cond.n_ref], rcos, rsin))
            keys, vals = kv.write_and_window(i, start, k_r, v)
            tokens = regions("post", *self._post_args(blk, tokens, self.window_attention(q_r, keys, vals), e0, tkv))
            tokens = self._inject_fast(regions, tokens, i, g, a)
        out = self.head(tokens, e)
        return self.unpatchify(out.float(), (nb, hp, wp))


class CondCache:
    """Per-layer K (normed, un-roped) and V of the [ref | motion] sink tokens."""

    def __init__(self, num_layers: int, dtype: torch.dtype):
        self.k: list[torch.Tensor | None] = [None] * num_layers
        self.v: list[torch.Tensor | None] = [None] * num_layers
        self.dtype = dtype
        self.grids = None
        self.n_ref = 0

    def bind_all(self, dit: "WanS2VTransformer", caches: list) -> None:
        """Speed path: copy the sink into every step's ``FastKVCache``, then keep only the reference keys (the
        only part re-roped per call): the values and motion keys now live in the caches (saves ~1.6 GiB)."""
        for c in caches:
            c.bind(dit, self)
        self.k = [k[:, :self.n_ref].clone() for k in self.k]
        self.v = [None] * len(self.v)


class BlockKVCache:
    """One denoising step's ring buffer of ROPED keys and values: L_kv = window frames · fsl."""

    def __init__(self, num_layers: int, batch: int, length: int, heads: int, head_dim: int,
                 dtype: torch.dtype, device):
        self.length = length
        shape = (batch, length, heads, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]

    def write_and_window(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor):
        n = k.shape[1]
        slot = start % self.length
        if slot + n > self.length:
            raise ValueError("block does not divide the KV window; window frames must be a multiple of block frames")
        self.k[layer][:, slot:slot + n] = k.to(self.k[layer].dtype)
        self.v[layer][:, slot:slot + n] = v.to(self.v[layer].dtype)
        if start < self.length:  # first window: only what has been written so far
            return self.k[layer][:, :start + n], self.v[layer][:, :start + n]
        return self.k[layer], self.v[layer]


class FastKVCache:
    """One denoising step's cache for the speed path: ``[sink | ring window]`` per layer. The sink region holds
    the ref + motion keys (motion roped once at ``bind``, ref re-roped every call) and values, so attention reads
    one contiguous slice: no per-layer concatenation. The sink sits at the front, so the partly filled first
    window (blocks 0..2) is contiguous too. Costs one copy of the sink K/V per step cache (~2 GiB at 704*384).

    ``store_dtype`` FP8 (``--kv_cache fp8``): rows stored as e4m3 with one fp32 scale per token and head
    (``speed.quant_tokens``), dequantised into the model dtype per layer for attention. With ``scales="head"``
    (``--attention fa3-fp8``) one fp32 scale per layer and head instead, fixed by the first sink bound
    (``speed.head_scales``), and the window is handed to attention as (e4m3 rows, [B, H] scale) pairs, not
    dequantised: FlashAttention-3's FP8 kernel reads them as they are. ``home`` "cpu" with a CUDA
    ``device`` (``--offload_dit weights+kv``): the rows live in pinned host memory; writes are copied there and
    each layer's window is copied in, all on the compute stream (ordered, no host sync)."""

    def __init__(self, num_layers: int, batch: int, length: int, n_cond: int, heads: int, head_dim: int,
                 dtype: torch.dtype, device, store_dtype: torch.dtype | None = None, home=None, codec=None,
                 scales: str = "token"):
        from engine.video.speed import FP8, kv_codec
        self.codec = codec if codec is not None else (kv_codec(None) if store_dtype == FP8 else None)
        self.length, self.n_cond = length, n_cond
        self.dtype, self.device = dtype, torch.device(device)
        self.store_dtype = store_dtype or dtype
        self.fp8 = self.store_dtype == FP8
        if scales not in ("token", "head") or (scales == "head" and not self.fp8):
            raise ValueError(f"scales must be 'token' or 'head' (FP8 caches only), not {scales!r}")
        self.head = scales == "head"
        self.home = torch.device(home) if home is not None else self.device
        pin = self.home.type == "cpu" and self.device.type == "cuda"
        shape = (batch, n_cond + length, heads, head_dim)

        def buf(shp, dt):
            return torch.zeros(shp, dtype=dt, device=self.home, pin_memory=pin)

        self.k = [buf(shape, self.store_dtype) for _ in range(num_layers)]
        self.v = [buf(shape, self.store_dtype) for _ in range(num_layers)]
        sshape = (batch, n_cond + length, heads, 1)
        if self.head:  # [B, H] per layer, on the compute device, set by ``bind``
            self.ks, self.vs = [None] * num_layers, [None] * num_layers
        else:
            self.ks = [buf(sshape, torch.float32) for _ in range(num_layers)] if self.fp8 else None
            self.vs = [buf(sshape, torch.float32) for _ in range(num_layers)] if self.fp8 else None
        self._bound = None

    @staticmethod
    def host_bytes(num_layers: int, batch: int, length: int, n_cond: int, heads: int, head_dim: int,
                   store_bytes: int, fp8: bool) -> int:
        rows = batch * (n_cond + length) * heads
        return 2 * num_layers * rows * (head_dim * store_bytes + (4 if fp8 else 0))

    def nbytes(self) -> int:
        n = sum(t.numel() * t.element_size() for t in self.k + self.v)
        return n + (sum(t.numel() * 4 for t in self.ks + self.vs if t is not None) if self.fp8 else 0)

    def _put(self, store, scales, layer: int, lo: int, x: torch.Tensor) -> None:
        n = x.shape[1]
        if self.head:
            store[layer][:, lo:lo + n].copy_(self.codec("quant_head", x, scales[layer]), non_blocking=True)
        elif self.fp8:
            x8, sc = self.codec("quant", x)
            store[layer][:, lo:lo + n].copy_(x8, non_blocking=True)
            scales[layer][:, lo:lo + n].copy_(sc, non_blocking=True)
        else:
            store[layer][:, lo:lo + n].copy_(x.to(self.store_dtype), non_blocking=True)

    def _get(self, store, scales, layer: int, end: int) -> torch.Tensor:
        x = store[layer][:, :end]
        if self.head:  # e4m3 rows and their head scales, as FA3's FP8 kernel takes them
            return x.to(self.device, non_blocking=True), scales[layer]
        if not self.fp8 and self.home == self.device:
            return x  # a view: attention reads the cache in place
        x = x.to(self.device, non_blocking=True)
        if not self.fp8:
            return x
        return self.codec("dequant", x, scales[layer][:, :end].to(self.device, non_blocking=True), self.dtype)

    def bind(self, dit: WanS2VTransformer, cond: CondCache) -> None:
        """Copy a (new) sink cache in: motion keys roped at their fixed positions, all values."""
        if self._bound is cond:
            return
        if cond.v[0] is None:
            raise ValueError("this sink cache was compacted by bind_all; bind every step cache before compacting")
        if cond.k[0].shape[1] != self.n_cond:
            raise ValueError(f"sink has {cond.k[0].shape[1]} tokens, the cache was sized for {self.n_cond}")
        n_ref = cond.n_ref
        mcos = msin = None
        if len(cond.grids) > 1:
            mcos, msin = rope_tables(dit.grid_freqs(cond.grids[1:], cond.k[0].device))
        if self.head and self.ks[0] is None:
            # The first sink sets each layer's head scales (RoPE: within sqrt(2) of un-roped) for the cache's
            # life: a rolling sink bound later keeps them, since the window still holds rows encoded with them.
            from engine.video.speed import head_scales
            for i in range(len(self.k)):
                self.ks[i] = head_scales(cond.k[i][:, :self.n_cond]).to(self.device)
                self.vs[i] = head_scales(cond.v[i][:, :self.n_cond]).to(self.device)
        for i in range(len(self.k)):
            self._put(self.v, self.vs, i, 0, cond.v[i][:, :self.n_cond])
            if mcos is not None:
                self._put(self.k, self.ks, i, n_ref, rope_fp32(cond.k[i][:, n_ref:], mcos, msin).to(self.dtype))
        self._bound = cond

    def saturated(self) -> dict:
        """Head-scaled caches: the share of stored k and v codes at e4m3's largest magnitude (rows louder than
        the sink's headroom, clipped). A diagnostic for the bench: one pass over the caches."""
        from engine.video.speed import FP8_MAX
        if not self.head:
            return {}
        out = {}
        for name, store in (("k", self.k), ("v", self.v)):
            n = sum(t.numel() for t in store)
            out[name] = sum(float((t.float().abs() >= FP8_MAX).sum()) for t in store) / max(1, n)
        return out

    def write_ref(self, layer: int, k_ref: torch.Tensor) -> None:
        self._put(self.k, self.ks, layer, 0, k_ref)

    def write_and_window(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor):
        n = k.shape[1]
        slot = start % self.length
        if slot + n > self.length:
            raise ValueError("block does not divide the KV window; window frames must be a multiple of block frames")
        o = self.n_cond + slot
        self._put(self.k, self.ks, layer, o, k)
        self._put(self.v, self.vs, layer, o, v)
        end = self.n_cond + start + n if start < self.length else self.n_cond + self.length
        return self._get(self.k, self.ks, layer, end), self._get(self.v, self.vs, layer, end)


def prefill_sink(dit: "WanS2VTransformer", cond: "Cond", dtype, tkv: "TextKV | None") -> "CondCache":
    """The sink's K/V (reference, motion and text) for every layer; with ``tkv`` (the text K/V computed once per
    clip) through the speed path, else the reference path."""
    cc = CondCache(dit.config.num_layers, dtype)
    if tkv is not None:
        dit.prefill_cond_fast(cc, cond, tkv)
    else:
        dit.prefill_cond(cc, cond)
    return cc

"""Ulysses sequence parallel: each rank of a group holds a contiguous slice of the tokens for every
token-wise op (modulation, q/k/v/o, cross-attention, FFN, audio injection) and, for self-attention, an
all-to-all trades "my tokens, all heads" for "all tokens, my heads" (and back after attention). Attention is
exact per head, so the result equals the one-process forward up to floating-point summation order.

Token slices may be uneven (sizes differ by at most one); heads must divide by the group size."""
from __future__ import annotations

import torch
import torch.distributed as dist

from engine.video.dit import Rope3D, Segment, SelfAttnContext, WanS2VTransformer, sdpa


def split_sizes(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


class SeqParallel:
    """One sequence-parallel group (``ranks`` of the default group, this process among them)."""

    def __init__(self, ranks: list[int], group=None):
        self.ranks = ranks
        self.size = len(ranks)
        self.index = ranks.index(dist.get_rank())
        self.group = group

    def bounds(self, n: int) -> tuple[list[int], int, int]:
        sizes = split_sizes(n, self.size)
        lo = sum(sizes[:self.index])
        return sizes, lo, lo + sizes[self.index]

    def heads(self, h: int) -> tuple[int, int]:
        hn = h // self.size
        return self.index * hn, (self.index + 1) * hn

    def to_heads(self, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """[..., L_mine, H, d] -> [..., L, H/n, d]: all tokens, this rank's heads (leading dims kept)."""
        n, hn = self.size, x.shape[-2] // self.size
        send = x.unflatten(-2, (n, hn)).movedim(-3, 0)  # [n, ..., L_mine, hn, d]
        lead = x.shape[:-3]
        recv = [torch.empty(*lead, sizes[j], hn, x.shape[-1], dtype=x.dtype, device=x.device) for j in range(n)]
        dist.all_to_all(recv, [t.contiguous() for t in send.unbind(0)], group=self.group)
        return torch.cat(recv, dim=-3)

    def to_tokens(self, y: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """[B, L, H/n, d] -> [B, L_mine, H, d] (inverse of ``to_heads``)."""
        parts = [t.contiguous() for t in y.split(sizes, dim=1)]
        recv = [torch.empty_like(parts[self.index]) for _ in range(self.size)]
        dist.all_to_all(recv, parts, group=self.group)
        return torch.cat(recv, dim=2)

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sizes: list[int], kv_hook=None):
        """Self-attention of local q/k/v [B, L_mine, H, d]; one all-to-all for q, k and v together.
        ``kv_hook(k, v) -> (keys, values)`` may extend the keys (causal KV cache, sink)."""
        dt = v.dtype
        qkv = self.to_heads(torch.stack([q.to(dt), k.to(dt), v]), sizes)
        qh, kh, vh = qkv.unbind(0)
        if kv_hook is not None:
            kh, vh = kv_hook(kh, vh)
        return self.to_tokens(sdpa(qh, kh, vh), sizes)

    def gather_tokens(self, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """[B, L_mine, D] on every rank -> [B, L, D] on every rank."""
        m = max(sizes)
        pad = torch.zeros(x.shape[0], m, *x.shape[2:], dtype=x.dtype, device=x.device)
        pad[:, :x.shape[1]] = x
        out = [torch.empty_like(pad) for _ in range(self.size)]
        dist.all_gather(out, pad, group=self.group)
        return torch.cat([o[:, :s] for o, s in zip(out, sizes)], dim=1)

    def broadcast(self, x: torch.Tensor) -> torch.Tensor:
        if self.size > 1:
            dist.broadcast(x, src=self.ranks[0], group=self.group)
        return x


def local_segments(segs: list[Segment], lo: int, hi: int) -> list[Segment]:
    out = []
    for s in segs:
        a, b = max(s.start, lo), min(s.end, hi)
        if a < b:
            out.append(Segment(a - lo, b - lo, s.e0))
    return out


def inject_local(dit: WanS2VTransformer, x: torch.Tensor, block: int, lo: int, n_noisy: int, nf: int,
                 g: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``WanS2VTransformer._inject`` on the token slice [lo, lo + len): each noisy token attends to its own
    latent frame's audio tokens, so the slice is cut at frame boundaries."""
    j = dit.audio_injector.block_to_slot.get(block)
    if j is None:
        return x
    per = n_noisy // nf
    hi = max(0, min(x.shape[1], n_noisy - lo))
    if hi == 0:
        return x
    adain, inj = dit.audio_injector.injector_adain_layers[j], dit.audio_injector.injector[j]
    parts, pos = [], 0
    while pos < hi:
        f = (lo + pos) // per
        end = min(hi, (f + 1) * per - lo)
        seg = x[:, pos:end]
        h = adain(seg, g[:, f])
        res = inj.cross(h, a[:, f].to(h.dtype))
        parts.append(seg + res.float())
        pos = end
    return torch.cat(parts + [x[:, hi:]], dim=1)


def forward(dit: WanS2VTransformer, sp: SeqParallel, x: torch.Tensor, t: torch.Tensor, cond, audio_feats,
            pose=None, drop_motion: bool = False) -> torch.Tensor:
    """``WanS2VTransformer.forward`` (S2V offline clip) over the ranks of ``sp``; every rank returns the velocity."""
    b, _, nf, hl, wl = x.shape
    hp, wp = hl // 2, wl // 2
    noisy = dit.noisy_tokens(x, pose)
    n0 = noisy.shape[1]
    ctok, cgrids, _ = dit.cond_tokens(cond.ref, None if drop_motion else cond.motion)
    tokens = torch.cat([noisy, ctok], dim=1)
    freqs = dit.grid_freqs([(list(range(nf)), list(range(hp)), list(range(wp)))] + cgrids, x.device)
    e, e0 = dit.time_vectors(t)
    if dit.config.zero_timestep:
        segs = [Segment(0, n0, e0), Segment(n0, tokens.shape[1], dit.time_vectors(torch.zeros_like(t))[1])]
    else:
        segs = [Segment(0, tokens.shape[1], e0)]
    g, a = dit.audio_tokens(audio_feats)
    sizes, lo, hi = sp.bounds(tokens.shape[1])
    tok, lsegs = tokens[:, lo:hi], local_segments(segs, lo, hi)
    sa = SelfAttnContext(freqs[lo:hi], lambda layer, q_r, k_n, k_r, v: sp.attention(q_r, k_r, v, sizes))
    for blk in dit.blocks:
        tok = blk(tok, lsegs, cond.context, sa)
        tok = inject_local(dit, tok, blk.index, lo, n0, nf, g, a)
    full = sp.gather_tokens(tok, sizes)
    out = dit.head(full[:, :n0], e)
    return dit.unpatchify(out.float(), (nf, hp, wp))


def forward_block(dit: WanS2VTransformer, sp: SeqParallel, x: torch.Tensor, t: torch.Tensor, context, audio_feats,
                  frame0: int, kv, cond, ref_shift: int, pose=None) -> torch.Tensor:
    """``WanS2VTransformer.forward_block`` (LiveAvatar causal block) over the ranks of ``sp``. ``kv`` is this
    rank's share of the step's KV ring: this rank's heads only (H / sp.size), so the ring's memory splits too;
    ``cond`` is the full sink cache (the sink prefill runs on every rank)."""
    nb, hp, wp, tokens, n0, freqs, cfreqs, e, e0, start, g, a = dit.block_inputs(
        x, t, audio_feats, frame0, cond, ref_shift, pose)
    h0, h1 = sp.heads(dit.config.num_heads)
    sizes, lo, hi = sp.bounds(n0)

    def hook(layer, q_r, k_n, k_r, v):
        def kv_hook(kh, vh):
            keys, vals = kv.write_and_window(layer, start, kh, vh)
            ck = Rope3D.apply(cond.k[layer][:, :, h0:h1], cfreqs)
            return torch.cat([keys, ck.to(keys.dtype)], 1), torch.cat([vals, cond.v[layer][:, :, h0:h1]], 1)
        return sp.attention(q_r, k_r, v, sizes, kv_hook)

    sa = SelfAttnContext(freqs[lo:hi], hook)
    tok, lsegs = tokens[:, lo:hi], local_segments([Segment(0, n0, e0)], lo, hi)
    for blk in dit.blocks:
        tok = blk(tok, lsegs, context, sa)
        tok = inject_local(dit, tok, blk.index, lo, n0, nb, g, a)
    out = dit.head(sp.gather_tokens(tok, sizes), e)
    return dit.unpatchify(out.float(), (nb, hp, wp))

"""FP8 self-attention candidates for the speed path (issue 17). Layout everywhere: [B, L, H, d], like ``dit.sdpa``.

Two kernels, both fed e4m3 operands for Hopper's FP8 tensor cores:

- ``triton_fp8_attention``: a Triton flash-attention forward. Q and K carry one scale per token and head
  (``quant_tokens``; K optionally smoothed first: subtracting K's mean over tokens shifts every logit of a query
  row by the same amount, which softmax ignores, and leaves e4m3 fewer bits of common offset to spend), V one
  scale per head and channel (it multiplies the output channel, so it is undone after the P.V product). The
  softmax probabilities P lie in (0, 1]; with ~15k keys most of them sit below e4m3's smallest normal (2^-6) or
  even its smallest subnormal (2^-9), so P is multiplied by ``P_SCALE`` before the cast and divided out with
  the row sum at the end. Output bf16.
- ``CudnnFp8Attention``: cuDNN's own FP8 flash attention (``sdpa_fp8`` of the ``nvidia-cudnn-frontend``
  package): one scale per tensor for q, k, v, the same P scaling (``scale_s``/``descale_s``). Hopper's cuDNN
  may insist on an e4m3 output; then O is scaled by 1/descale_v (|O| <= max |V|: O is a convex combination of
  V rows) and dequantised here.

Nothing here runs on CPU; importing it does not need Triton or cudnn.
"""
from __future__ import annotations

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
# P in (0, 1] -> (0, 256]: keeps P's largest values under e4m3's 448 with headroom and moves the long tail of
# small probabilities out of the subnormal range (2^-9 / 256 ~ 7.6e-6 is now the smallest non-zero P).
P_SCALE = 256.0

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU machines: the Triton kernel is unavailable, the rest of the module still imports
    triton = None


def quant_tokens(x: torch.Tensor, smooth: bool = False):
    """[B, L, H, d] -> (e4m3 [B, L, H, d], fp32 dequant scale [B, H, L]): one scale per token and head.
    ``smooth``: subtract the mean over tokens first (for K only: softmax-invariant)."""
    xf = x.float()
    if smooth:
        xf = xf - xf.mean(dim=1, keepdim=True)
    s = (xf.abs().amax(dim=-1) / FP8_MAX).clamp(min=1e-12)  # [B, L, H]
    return (xf / s[..., None]).to(FP8), s.transpose(1, 2).contiguous()


def quant_tokens_int8(x: torch.Tensor, smooth: bool = False):
    """Like ``quant_tokens`` but int8 (round to nearest, +-127): 7 bits at the row maximum against e4m3's 3
    mantissa bits, so the Q.K logits come out several times closer (Hopper runs int8 and FP8 MMAs equally fast)."""
    xf = x.float()
    if smooth:
        xf = xf - xf.mean(dim=1, keepdim=True)
    s = (xf.abs().amax(dim=-1) / 127.0).clamp(min=1e-12)  # [B, L, H]
    return torch.round(xf / s[..., None]).clamp(-127, 127).to(torch.int8), s.transpose(1, 2).contiguous()


def quant_channels_t(v: torch.Tensor):
    """V [B, N, H, d] -> (e4m3 [B, N, H, d] view of [B, H, d, N] storage, fp32 dequant scale [B, H, d]). Stored
    transposed: Hopper's FP8 MMA wants both operands of P.V contiguous along the key axis."""
    vf = v.float()
    s = (vf.abs().amax(dim=1) / FP8_MAX).clamp(min=1e-12)  # [B, H, d]
    return (vf / s[:, None]).to(FP8).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2), s.contiguous()


def quant_tensor(x: torch.Tensor):
    """-> (e4m3 same shape, fp32 dequant scale [1, 1, 1, 1]): one scale for the whole tensor (cuDNN's FP8 SDPA)."""
    s = (x.abs().amax().float() / FP8_MAX).clamp(min=1e-12)
    return (x.float() / s).to(FP8), s.reshape(1, 1, 1, 1)


if triton is not None:
    _CONFIGS = [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
                for bm, bn, w, s in ((128, 128, 8, 3), (128, 64, 4, 3), (128, 128, 8, 2), (128, 64, 8, 3),
                                     (64, 128, 4, 3))]

    @triton.jit
    def _tile(acc, l_i, m_i, q, sq, k_base, sk_base, v_base, start_n, s_kn, s_vn, s_vd, N_K,
              offs_n, offs_d, PV_FP8: tl.constexpr, MASK: tl.constexpr, P_MUL: tl.constexpr):
        cols = start_n + offs_n
        if MASK:
            k = tl.load(k_base + cols[:, None] * s_kn + offs_d[None, :], mask=cols[:, None] < N_K, other=0.0)
            sk = tl.load(sk_base + cols, mask=cols < N_K, other=0.0)
            v = tl.load(v_base + offs_d[:, None] * s_vd + cols[None, :] * s_vn, mask=cols[None, :] < N_K, other=0.0)
        else:
            k = tl.load(k_base + cols[:, None] * s_kn + offs_d[None, :])
            sk = tl.load(sk_base + cols)
            v = tl.load(v_base + offs_d[:, None] * s_vd + cols[None, :] * s_vn)
        # int8 operands accumulate in int32, fp8 / bf16 in fp32; the scales turn either into logits (log2 units)
        qk = tl.dot(q, tl.trans(k)).to(tl.float32) * sq[:, None] * sk[None, :]
        if MASK:
            qk = tl.where(cols[None, :] < N_K, qk, float("-inf"))
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_ij[:, None])
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        if PV_FP8:
            p = p * P_MUL
        acc = tl.dot(p.to(v.dtype), tl.trans(v), acc)
        return acc, l_i, m_ij

    @triton.autotune(configs=_CONFIGS, key=["N_Q", "N_K", "HEAD_DIM", "QK_KIND", "PV_FP8"])
    @triton.jit
    def _attn_fwd(Q, K, V, O, SQ, SK, SV, qk_scale,
                  s_qb, s_qm, s_qh, s_kb, s_kn, s_kh, s_vb, s_vn, s_vh, s_vd, s_ob, s_om, s_oh,
                  s_sqb, s_sqh, s_skb, s_skh, s_svb, s_svh,
                  H, N_Q, N_K, HEAD_DIM: tl.constexpr, QK_KIND: tl.constexpr, PV_FP8: tl.constexpr,
                  P_MUL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        start_m = tl.program_id(0)
        off_bh = tl.program_id(1)
        b = off_bh // H
        h = off_bh % H
        offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, HEAD_DIM)
        row_ok = offs_m < N_Q
        q = tl.load(Q + b * s_qb + h * s_qh + offs_m[:, None] * s_qm + offs_d[None, :], mask=row_ok[:, None],
                    other=0.0)
        sq = tl.load(SQ + b * s_sqb + h * s_sqh + offs_m, mask=row_ok, other=0.0) * (qk_scale * 1.4426950408889634)
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
        k_base = K + b * s_kb + h * s_kh
        sk_base = SK + b * s_skb + h * s_skh
        v_base = V + b * s_vb + h * s_vh
        n_blocks = N_K // BLOCK_N
        for i in range(0, n_blocks):  # unmasked main loop
            acc, l_i, m_i = _tile(acc, l_i, m_i, q, sq, k_base, sk_base, v_base, i * BLOCK_N, s_kn, s_vn, s_vd,
                                  N_K, offs_n, offs_d, PV_FP8, False, P_MUL)
        if n_blocks * BLOCK_N < N_K:  # ragged tail
            acc, l_i, m_i = _tile(acc, l_i, m_i, q, sq, k_base, sk_base, v_base, n_blocks * BLOCK_N, s_kn, s_vn,
                                  s_vd, N_K, offs_n, offs_d, PV_FP8, True, P_MUL)
        sv = tl.load(SV + b * s_svb + h * s_svh + offs_d)
        if PV_FP8:
            l_i = l_i * P_MUL
        acc = acc / l_i[:, None] * sv[None, :]
        tl.store(O + b * s_ob + h * s_oh + offs_m[:, None] * s_om + offs_d[None, :], acc.to(O.dtype.element_ty),
                 mask=row_ok[:, None])


def triton_attention(q, sq, k, sk, v, sv, config: dict | None = None) -> torch.Tensor:
    """q [B, M, H, d], k [B, N, H, d] (int8, e4m3 or bf16) with dequant scales sq [B, H, M], sk [B, H, N];
    v [B, N, H, d] (e4m3 or bf16; any strides, e4m3 should be stored key-contiguous: ``quant_channels_t``) with
    sv [B, H, d] -> [B, M, H, d] bf16. Scale 1/sqrt(d), no mask. ``config``: fixed BLOCK_M, BLOCK_N (and
    num_warps, num_stages) instead of autotuning."""
    if triton is None:
        raise RuntimeError("the Triton attention kernel needs Triton (a CUDA build of PyTorch)")
    b, m, h, d = q.shape
    n = k.shape[1]
    o = torch.empty(b, m, h, d, device=q.device, dtype=torch.bfloat16)
    grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]), b * h)  # noqa: E731
    kernel = _attn_fwd if config is None else _attn_fwd.fn
    kernel[grid](q, k, v, o, sq, sk, sv, d ** -0.5,
                 q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
                 v.stride(0), v.stride(1), v.stride(2), v.stride(3), o.stride(0), o.stride(1), o.stride(2),
                 sq.stride(0), sq.stride(1), sk.stride(0), sk.stride(1), sv.stride(0), sv.stride(1),
                 h, m, n, HEAD_DIM=d, QK_KIND=str(q.dtype), PV_FP8=v.dtype == FP8, P_MUL=P_SCALE,
                 **(config or {}))
    return o


def triton_fp8_attention(q, k, v, qk: str = "int8", pv: str = "fp8", smooth_k: bool = True) -> torch.Tensor:
    """bf16 [B, L, H, d] in and out; quantises per call. ``qk``: int8 | fp8 | bf16, ``pv``: fp8 | bf16."""
    quant = {"int8": quant_tokens_int8, "fp8": quant_tokens}.get(qk)
    if quant is None:
        q8, sq = q, torch.ones(q.shape[0], q.shape[2], q.shape[1], device=q.device)
        k8, sk = k, torch.ones(k.shape[0], k.shape[2], k.shape[1], device=k.device)
    else:
        q8, sq = quant(q)
        k8, sk = quant(k, smooth=smooth_k)
    if pv == "fp8":
        v8, sv = quant_channels_t(v)
    else:
        v8, sv = v, torch.ones(v.shape[0], v.shape[2], v.shape[3], device=v.device)
    return triton_attention(q8, sq, k8, sk, v8, sv)


class CudnnFp8Attention:
    """cuDNN FP8 SDPA through ``cudnn`` (nvidia-cudnn-frontend); one execution graph per shape, built lazily.
    ``o_dtype``: "bf16" (asks cuDNN for a bf16 output, falls back to e4m3 when the GPU's cuDNN refuses) or "fp8"."""

    def __init__(self, o_dtype: str = "bf16"):
        import cudnn  # ImportError names the missing package to the caller
        self.cudnn = cudnn
        self.handle = cudnn.create_handle()
        self.o_dtype = o_dtype
        self.graphs: dict = {}
        self.o_fallback_reason = ""

    def _build(self, shape_q, stride_q, shape_k, stride_k, device, o_bf16: bool):
        cudnn = self.cudnn
        e4m3, f32 = cudnn.data_type.FP8_E4M3, cudnn.data_type.FLOAT
        g = cudnn.pygraph(io_data_type=e4m3, intermediate_data_type=f32, compute_data_type=f32, handle=self.handle)
        tq = g.tensor(name="q", dim=shape_q, stride=stride_q, data_type=e4m3)
        tk = g.tensor(name="k", dim=shape_k, stride=stride_k, data_type=e4m3)
        tv = g.tensor(name="v", dim=shape_k, stride=stride_k, data_type=e4m3)
        sc = [g.tensor(name=n, dim=(1, 1, 1, 1), stride=(1, 1, 1, 1), data_type=f32)
              for n in ("descale_q", "descale_k", "descale_v", "descale_s", "scale_s", "scale_o")]
        o, _, amax_s, amax_o = g.sdpa_fp8(q=tq, k=tk, v=tv, descale_q=sc[0], descale_k=sc[1], descale_v=sc[2],
                                          descale_s=sc[3], scale_s=sc[4], scale_o=sc[5], generate_stats=False,
                                          attn_scale=shape_q[-1] ** -0.5, use_causal_mask=False, name="sdpa_fp8")
        b, h, m, d = shape_q  # O is allocated contiguous [B, M, H, d] by ``run``
        o.set_output(True).set_dim(shape_q).set_stride((m * h * d, d, h * d, 1)).set_data_type(
            cudnn.data_type.BFLOAT16 if o_bf16 else e4m3)
        for a in (amax_s, amax_o):
            a.set_output(True).set_dim((1, 1, 1, 1)).set_stride((1, 1, 1, 1)).set_data_type(f32)
        g.validate()
        g.build_operation_graph()
        g.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        g.check_support()
        g.build_plans()
        ws = torch.empty(g.get_workspace_size(), device=device, dtype=torch.uint8)
        one = torch.ones(1, 1, 1, 1, device=device, dtype=torch.float32)
        return {"g": g, "t": (tq, tk, tv, *sc, o, amax_s, amax_o), "ws": ws, "o_bf16": o_bf16, "one": one,
                "p_scales": (one / P_SCALE, one * P_SCALE), "amax": torch.zeros(2, device=device, dtype=torch.float32)}

    def graph(self, q8: torch.Tensor, k8: torch.Tensor) -> dict:
        b, m, h, d = q8.shape
        n = k8.shape[1]
        key = (b, m, n, h, d, q8.stride(), k8.stride(), q8.device)
        if key not in self.graphs:
            # cuDNN's dims are (B, H, S, d); the strides express our [B, L, H, d] storage
            sq, sk = q8.stride(), k8.stride()
            args = ((b, h, m, d), (sq[0], sq[2], sq[1], sq[3]), (b, h, n, d), (sk[0], sk[2], sk[1], sk[3]), q8.device)
            entry = None
            if self.o_dtype == "bf16":
                try:
                    entry = self._build(*args, o_bf16=True)
                except Exception as exc:  # Hopper cuDNN: FP8 output only -> e4m3 O, dequantised below
                    self.o_fallback_reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            self.graphs[key] = entry or self._build(*args, o_bf16=False)
        return self.graphs[key]

    def run(self, q8, dq, k8, dk, v8, dv) -> torch.Tensor:
        """e4m3 [B, L, H, d] operands and their fp32 [1, 1, 1, 1] dequant scales -> bf16 [B, M, H, d]."""
        e = self.graph(q8, k8)
        self.cudnn.set_stream(handle=self.handle, stream=torch.cuda.current_stream(q8.device).cuda_stream)
        tq, tk, tv, tdq, tdk, tdv, tds, tss, tso, to, tas, tao = e["t"]
        out = torch.empty(q8.shape, device=q8.device, dtype=torch.bfloat16 if e["o_bf16"] else FP8)
        scale_o = e["one"] if e["o_bf16"] else 1.0 / dv
        ds, ss = e["p_scales"]
        pack = {tq: q8, tk: k8, tv: v8, tdq: dq, tdk: dk, tdv: dv, tds: ds, tss: ss,
                tso: scale_o, to: out, tas: e["amax"][0:1].view(1, 1, 1, 1), tao: e["amax"][1:2].view(1, 1, 1, 1)}
        e["g"].execute(pack, e["ws"], handle=self.handle)
        return out if e["o_bf16"] else (out.float() * dv).to(torch.bfloat16)

    def __call__(self, q, k, v) -> torch.Tensor:
        """bf16 [B, L, H, d] in and out; quantises per call (one scale per tensor)."""
        q8, dq = quant_tensor(q)
        k8, dk = quant_tensor(k)
        v8, dv = quant_tensor(v)
        return self.run(q8, dq, k8, dk, v8, dv)


def fa3_attention(q, k, v, q_descale=None, k_descale=None, v_descale=None) -> torch.Tensor:
    """FlashAttention-3 forward (Hopper; the ``flash_attn_3`` wheel ``bench/fa3_build.sh`` builds), [B, L, H, d]
    in and out. bf16 operands, or e4m3 ones with their [B, H] dequant scales (output bf16 either way)."""
    from flash_attn_interface import flash_attn_func
    r = flash_attn_func(q, k, v, q_descale=q_descale, k_descale=k_descale, v_descale=v_descale)
    return r[0] if isinstance(r, tuple) else r

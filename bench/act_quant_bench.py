"""How fast can the FP8 linears' activation quantisation be? (issue 17, one GPU; Triton)

  python bench/act_quant_bench.py [--out DIR]

The compiled FP8 block spends ~0.08 s per 12-frame block in inductor's fused kernels that feed the FP8 GEMMs
(layer norm + modulation + per-row amax + FP8 cast), at about a fifth of the memory bandwidth. This times, at
the real shapes (3,168 tokens of a 704*384 block):

  ln_mod   fp32 [3168, 5120] -> layer norm -> * (1 + scale) + shift -> rowwise e4m3 + scales
           (region_pre's input to q/k/v, and the FFN's input in region_post)
  quant    bf16 [3168, 13824] -> rowwise e4m3 + scales (the FFN's second linear)

each as torch.compile makes it (what the speed path runs today) and as one hand-written single-pass Triton
kernel (a program per row: the row is read once into registers, both reductions and the cast done there), with
the bandwidth floor (bytes moved / the copy bandwidth measured in the same run) and the two results compared.
Prints a short table last; numbers in DIR/act_quant_bench.json.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
EPS = 1e-6


@triton.jit
def _ln_mod_quant(x_ptr, shift_ptr, scale_ptr, y_ptr, s_ptr, D, eps, BLOCK: tl.constexpr, NORM: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < D
    h = tl.load(x_ptr + row * D + cols, mask=mask, other=0.0).to(tl.float32)
    if NORM:
        mean = tl.sum(h, 0) / D
        hc = tl.where(mask, h - mean, 0.0)
        var = tl.sum(hc * hc, 0) / D
        sc = tl.load(scale_ptr + cols, mask=mask, other=0.0)
        sh = tl.load(shift_ptr + cols, mask=mask, other=0.0)
        h = hc * tl.rsqrt(var + eps) * (1.0 + sc) + sh
    amax = tl.max(tl.where(mask, tl.abs(h), 0.0), 0)
    s = tl.maximum(amax / 448.0, 1e-12)
    q = tl.minimum(tl.maximum(h / s, -448.0), 448.0)
    tl.store(y_ptr + row * D + cols, q.to(tl.float8e4nv), mask=mask)
    tl.store(s_ptr + row, s)


def triton_quant(x: torch.Tensor, shift=None, scale=None):
    n, d = x.shape
    y = torch.empty((n, d), dtype=FP8, device=x.device)
    s = torch.empty((n, 1), dtype=torch.float32, device=x.device)
    block = triton.next_power_of_2(d)
    norm = shift is not None
    _ln_mod_quant[(n,)](x, shift if norm else x, scale if norm else x, y, s, d, EPS, BLOCK=block, NORM=norm,
                        num_warps=16 if block >= 16384 else 8)
    return y, s


def torch_ln_mod_quant(x, shift, scale):
    h = F.layer_norm(x, (x.shape[-1],), eps=EPS) * (1 + scale) + shift
    sx = (h.abs().amax(dim=1, keepdim=True) / FP8_MAX).clamp(min=1e-12)
    return (h / sx).clamp(-FP8_MAX, FP8_MAX).to(FP8), sx


def torch_quant(x):
    xf = x.float()
    sx = (xf.abs().amax(dim=1, keepdim=True) / FP8_MAX).clamp(min=1e-12)
    return (xf / sx).clamp(-FP8_MAX, FP8_MAX).to(FP8), sx


def compare(a, b) -> dict:
    (ya, sa), (yb, sb) = a, b
    da, db = ya.float() * sa, yb.float() * sb
    return {"dequant_max_abs_diff": float((da - db).abs().max()),
            "dequant_rel_l2": float((da - db).norm() / db.norm()),
            "fp8_codes_equal_fraction": float((ya.view(torch.uint8) == yb.view(torch.uint8)).float().mean())}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--tokens", type=int, default=3168)
    args = ap.parse_args()
    dev = "cuda"
    g = torch.Generator(device=dev).manual_seed(0)
    n = args.tokens
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": "python bench/act_quant_bench.py", "tokens": n}
    big = torch.empty(2 * 2**30, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(big)
    ms = triton.testing.do_bench(lambda: dst.copy_(big))
    bw = 2 * big.numel() / (ms / 1e3)  # bytes read + written per second
    res["copy_bandwidth_tb_s"] = bw / 1e12
    del big, dst

    x = torch.randn(n, 5120, device=dev, generator=g) * 3
    shift = torch.randn(5120, device=dev, generator=g) * 0.1
    scale = torch.randn(5120, device=dev, generator=g) * 0.1
    xq = (torch.randn(n, 13824, device=dev, generator=g) * 0.5).to(torch.bfloat16)
    cases = {
        "ln_mod": (torch.compile(torch_ln_mod_quant), lambda: triton_quant(x, shift, scale), (x, shift, scale),
                   x.numel() * 4 + x.numel() + n * 4),
        "quant": (torch.compile(torch_quant), lambda: triton_quant(xq), (xq,), xq.numel() * 2 + xq.numel() + n * 4),
    }
    rows = []
    for name, (compiled, tri, inputs, nbytes) in cases.items():
        compiled(*inputs)  # compile
        t_comp = triton.testing.do_bench(lambda: compiled(*inputs)) * 1e3
        t_tri = triton.testing.do_bench(tri) * 1e3
        floor = nbytes / bw * 1e6
        r = res[name] = {"compiled_us": t_comp, "triton_us": t_tri, "bandwidth_floor_us": floor,
                         "bytes": nbytes, **compare(tri(), compiled(*inputs))}
        rows.append((name, r))
        print(name, r, flush=True)
    with open(os.path.join(args.out, "act_quant_bench.json"), "w") as fh:
        json.dump(res, fh, indent=2)
    print(f"\ncopy bandwidth {res['copy_bandwidth_tb_s']:.2f} TB/s (read + write)")
    print("| case | torch.compile µs | one-pass Triton µs | bandwidth floor µs | FP8 codes equal | dequant rel L2 |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['compiled_us']:.1f} | {r['triton_us']:.1f} | {r['bandwidth_floor_us']:.1f} | "
              f"{r['fp8_codes_equal_fraction']:.4f} | {r['dequant_rel_l2']:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

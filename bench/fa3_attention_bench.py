"""FlashAttention-3 (Hopper) against the engine's cuDNN SDPA at the LiveAvatar block's window self-attention
shape (issue 17): q 3,168 tokens x kv 15,312 keys (sink + 4-block window), 40 heads, head dim 128, [B, L, H, d].
GPU only; needs the ``flash_attn_3`` wheel that ``bench/fa3_build.sh`` builds.

  python bench/fa3_attention_bench.py [--quick]

Rows:
- SDPA cuDNN bf16: what the engine runs now.
- FA3 bf16: the same maths, FA3's warp-specialised kernel.
- FA3 e4m3 (kernel): q, k, v quantised beforehand with one scale per head (FA3's descale layout), bf16 output;
  what a layer pays when the quantisation is done where q, k, v are produced.
- FA3 e4m3, K smoothed: K's mean over tokens removed first (softmax is unchanged by it; it narrows K's range).
- FA3 e4m3 + compiled quant per call: q, k and v quantised inside every call by one compiled function.
Relative L2 error against an fp32 SDPA of the same bf16 inputs, on the "heads" and "kbias" inputs of
``attention_fp8_bench``. Writes $OUT/fa3_attention_bench.json and prints a table last.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.attention_fp8_bench import make_inputs, print_table, reference, row_runner  # noqa: E402
from engine.video.fp8_attention import fa3_attention  # noqa: E402
from engine.video.speed import quant_heads  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from triton.testing import do_bench
    from engine.video.dit import sdpa
    t0 = time.time()
    b, m, n, h, d = 1, 3168, 15312, 40, 128
    flops = 4 * b * h * m * n * d
    data = {kind: make_inputs(kind, b, m, n, h, d) for kind in ("heads", "kbias")}
    refs = {kind: reference(*data[kind]) for kind in data}
    torch.cuda.synchronize()
    res = {"shape": f"q {m} x kv {n}, {h} heads, d {d}, layout [B, L, H, d]",
           "device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": []}
    rep = 100 if args.quick else 300
    row = row_runner(res, data, refs, do_bench, flops, rep, torch.cuda.synchronize)

    def cudnn(q, k, v):
        def fn():
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                return sdpa(q, k, v)
        return fn
    row("SDPA cuDNN bf16 (engine now)", cudnn)
    row("FA3 bf16", lambda q, k, v: (lambda: fa3_attention(q, k, v)))

    def fp8_kernel(smooth):
        def make(q, k, v):
            if smooth:
                k = (k.float() - k.float().mean(1, keepdim=True)).to(k.dtype)
            (q8, dq), (k8, dk), (v8, dv) = quant_heads(q), quant_heads(k), quant_heads(v)
            return lambda: fa3_attention(q8, k8, v8, dq, dk, dv)
        return make
    row("FA3 e4m3 (kernel)", fp8_kernel(False))
    row("FA3 e4m3, K smoothed (kernel)", fp8_kernel(True))
    cq = torch.compile(quant_heads, dynamic=False)

    def fp8_quant_per_call(q, k, v):
        def fn():
            (q8, dq), (k8, dk), (v8, dv) = cq(q), cq(k), cq(v)
            return fa3_attention(q8, k8, v8, dq, dk, dv)
        return fn
    row("FA3 e4m3 + compiled quant per call", fp8_quant_per_call)
    try:
        q, k, v = data["heads"]
        res["compiled_quant_ms"] = do_bench(lambda: (cq(q), cq(k), cq(v)), warmup=10, rep=rep,
                                            return_mode="median")
    except Exception as exc:
        res["compiled_quant_error"] = str(exc)[:300]

    res["wall_s"] = time.time() - t0
    with open(os.path.join(os.environ.get("OUT", "."), "fa3_attention_bench.json"), "w") as fh:
        json.dump(res, fh, indent=2)
    print(f"\n{res['device']}, {res['shape']}, torch {res['torch']}; compiled quant of q, k, v: "
          f"{res.get('compiled_quant_ms', float('nan')):.3f} ms; wall {res['wall_s']:.0f} s")
    print_table(res["rows"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Engine cost alone, in-process: microseconds per 40 ms chunk, one stream vs push_many batches.

    python bench/engine_cost.py                      # every engine, batches of 1 10 50 200
    python bench/engine_cost.py --batches 1 50 --chunks 200
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.expression.base import SAMPLE_RATE, Style  # noqa: E402
from engine.expression.evaluate import load_audio  # noqa: E402
from engine.expression.registry import ENGINES, load_engine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--audio", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                    "examples", "hello.wav"))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 10, 50, 200])
    ap.add_argument("--chunks", type=int, default=150, help="40 ms chunks per stream")
    args = ap.parse_args()
    x = load_audio(args.audio)
    step = SAMPLE_RATE * 40 // 1000
    chunks = [x[(i * step) % (x.size - step):][:step] for i in range(args.chunks)]
    print("| engine | streams per push_many | µs per stream-chunk |")
    print("|---|---|---|")
    for name in ENGINES:
        eng = load_engine(name)
        for b in args.batches:
            streams = [eng.open(30, Style(seed=i)) for i in range(b)]
            t = time.perf_counter()
            for c in chunks:
                eng.push_many(streams, [c] * b)
            print(f"| {name} | {b} | {(time.perf_counter() - t) / len(chunks) / b * 1e6:.0f} |")


if __name__ == "__main__":
    main()

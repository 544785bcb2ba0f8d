"""One markdown table of every bench/stream_bench.py JSON file in a folder, a row per level, oldest file first:
the table that bench/host16_ab.sh and bench/host16_confirm.sh print last.

    python bench/stream_runs_table.py DIR
"""
from __future__ import annotations

import glob
import json
import os
import sys

HEAD = ("| run | engine | chunk ms | streams | errors | p50 | p99 | p99 after 2 s | p99 2 s .. last 1 s | "
        "server p99 bucket | to_worker p99 | in_worker p99 | CPU ms/stream-s | cores (front) | run-queue wait ms/s |")


def rows(folder: str) -> list[str]:
    out = [HEAD, "|" + "---|" * HEAD.count(" | ") + "---|"]
    for path in sorted(glob.glob(os.path.join(folder, "*.json")), key=os.path.getmtime):
        with open(path) as fh:
            d = json.load(fh)
        for x in d["rows"]:
            def f(key, fmt=".1f"):
                return "-" if x.get(key) is None else format(x[key], fmt)
            stage = x.get("stage_p50_p99_bucket_ms", {})
            p99 = {k: f"<= {v[1]:.0f}" for k, v in stage.items()}
            out.append(
                f"| {os.path.basename(path)[:-5]} | {d['meta'].get('engine', '-')} | {d['meta']['chunk_ms']:.0f} | "
                f"{x['streams']} | {x['errors']} | {f('client_p50_ms')} | {f('client_p99_ms')} | "
                f"{f('client_p99_steady_ms')} | {f('client_p99_middle_ms')} | <= {x['server_p99_bucket_ms']:.0f} | "
                f"{p99.get('to_worker', '-')} | {p99.get('in_worker', '-')} | {f('server_cpu_ms_per_stream_s', '.2f')} | "
                f"{f('server_cores_used', '.2f')} ({f('front_cores', '.2f')}) | {f('server_runqueue_wait_ms_per_s', '.0f')} |")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: python bench/stream_runs_table.py DIR  (a folder of stream_bench.py --json files)")
    print("\n".join(rows(sys.argv[1])))

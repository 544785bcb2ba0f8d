#!/usr/bin/env bash
# Capacity confirmation of this tree on the 16-core device host (issue 19): server (1 front, 2 workers) on CPUs 0-1,
# load generator (4 processes x 8 connections) on CPUs 4-11, 10 s levels: 8 rounds of 200 streams x 100 ms chunks
# (default engine), 2 rounds each of 250 x 100 ms and 150 x 40 ms, and 200 x 100 ms for dsp-v1 and learned-v1.
# After installing the carried wheels into /tmp/site (as bench/host16_suite.sh's command does):
#   OUT=$OUT/c2 bash bench/host16_confirm.sh      # -> $OUT/c2/summary.md and results.tgz (one JSON per level)
set -u
OUT=${OUT:-/tmp/c2}; mkdir -p "$OUT/r"; PY=python3
v() {  # tag, chunk ms, streams, [engine]
  PYTHONPATH="/tmp/site:$PWD" timeout -k 5 70 $PY bench/stream_bench.py --server-cpus 0,1 --client-cpus 4-11 --workers 2 \
    --clients 4 --channels 8 --seconds 10 --chunk-ms "$2" --streams $3 ${4:+--engine $4} --json "$OUT/r/$1.json" --note "$1" > /dev/null 2>&1
}
for r in 1 2 3 4 5 6 7 8; do v d100_200_r$r 100 200; done
for r in 1 2; do v d100_250_r$r 100 250; v d40_150_r$r 40 150; done
v dsp100_200 100 200 dsp-v1; v l1_100_200 100 200 learned-v1
$PY - "$OUT/r" <<'PY' | tee "$OUT/summary.md"
import glob, json, os, sys
print("| run | engine | chunk ms | streams | errors | p50 | p99 | p99 after 2 s | p99 2 s .. last 1 s | to_worker p99 | in_worker p99 | CPU ms/stream-s | cores (front) | run-queue wait ms/s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for p in sorted(glob.glob(os.path.join(sys.argv[1], "*.json")), key=os.path.getmtime):
    d = json.load(open(p))
    for x in d["rows"]:
        f = lambda k, fmt=".1f": "-" if x.get(k) is None else format(x[k], fmt)
        st = x.get("stage_p50_p99_bucket_ms", {})
        print(f"| {os.path.basename(p)[:-5]} | {d['meta'].get('engine') or 'default'} | {d['meta']['chunk_ms']:.0f} | {x['streams']} | {x['errors']} | {f('client_p50_ms')} | {f('client_p99_ms')} | {f('client_p99_steady_ms')} | {f('client_p99_middle_ms')} | <= {st.get('to_worker', [0, 0])[1]:.0f} | <= {st.get('in_worker', [0, 0])[1]:.0f} | {f('server_cpu_ms_per_stream_s', '.2f')} | {f('server_cores_used', '.2f')} ({f('front_cores', '.2f')}) | {f('server_runqueue_wait_ms_per_s', '.0f')} |")
PY
tar -czf "$OUT/results.tgz" -C "$OUT" r && rm -rf "$OUT/r"

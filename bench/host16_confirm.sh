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
$PY bench/stream_runs_table.py "$OUT/r" | tee "$OUT/summary.md"
tar -czf "$OUT/results.tgz" -C "$OUT" r && rm -rf "$OUT/r"

#!/usr/bin/env bash
# Before/after on the 16-core device host (issue 19): the same stream_bench.py against two trees, rounds
# interleaved (old, new, new, old, ...), server on CPUs 0-1, load generator on CPUs 4-11, 10 s levels.
#
#   git archive -o .ab/old.tar <old commit>          # here, in an ignored folder that the device call carries
#   OUT=$OUT OLD_TAR=.ab/old.tar bash bench/host16_ab.sh    # on the device host, from the repository root
#   ROUNDS=3 CHUNK_MS=100 STREAMS="200" EXTRA40=1 ...        # defaults; EXTRA40=1 adds 40 ms x 100 streams (new tree)
#   MID_TAR=.ab/mid.tar ...                                  # a third tree ("mid"), the three rotated each round
#   SERVER_CPUS=0,1 CLIENT_CPUS=0,1 STREAMS=10 LEVEL_SECONDS=3 ROUNDS=1 SITE=   # a smoke run on a small machine
set -u
OUT=${OUT:-/tmp/ab}; OLD_TAR=${OLD_TAR:-.ab/old.tar}; ROUNDS=${ROUNDS:-3}; CHUNK_MS=${CHUNK_MS:-100}
STREAMS=${STREAMS:-200}; EXTRA40=${EXTRA40:-1}; PY=${PYTHON:-python3}; SECONDS_=${LEVEL_SECONDS:-10}
SERVER_CPUS=${SERVER_CPUS:-0,1}; CLIENT_CPUS=${CLIENT_CPUS:-4-11}
MID_TAR=${MID_TAR:-}
unpack() {  # tar, tag: the tree in /tmp/ab_<tag>, with this tree's stubs and stream_bench.py
  mkdir -p "/tmp/ab_$2" && tar -xf "$1" -C "/tmp/ab_$2" && cp -r avatarbridge "/tmp/ab_$2/" \
    && cp bench/stream_bench.py "/tmp/ab_$2/bench/"
}
mkdir -p "$OUT" && unpack "$OLD_TAR" old || exit 1
[ -z "$MID_TAR" ] || unpack "$MID_TAR" mid || exit 1
NEW=$PWD SITE=${SITE:-/tmp/site}
v() {  # tag, tree, chunk ms, streams
  (cd "$2" && PYTHONPATH="$SITE:$2" timeout -k 5 60 $PY bench/stream_bench.py --server-cpus "$SERVER_CPUS" \
    --client-cpus "$CLIENT_CPUS" --workers 2 --clients 4 --channels 8 --seconds "$SECONDS_" --chunk-ms "$3" --streams $4 --json "$OUT/$1.json" --note "$1" \
    > /dev/null 2>&1)
}
TAGS="old new"; [ -z "$MID_TAR" ] || TAGS="old mid new"
set -- $TAGS
for r in $(seq 1 "$ROUNDS"); do
  for tag in "$@"; do  # this round's order; the next round starts one tree later
    [ "$tag" = new ] && tree=$NEW || tree=/tmp/ab_$tag
    v ${tag}_r$r "$tree" "$CHUNK_MS" "$STREAMS"
  done
  first=$1; shift; set -- "$@" "$first"
  [ "$EXTRA40" = 1 ] && v new_c40_r$r "$NEW" 40 100
done
$PY bench/stream_runs_table.py "$OUT" | tee "$OUT/summary.md"

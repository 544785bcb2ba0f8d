#!/usr/bin/env bash
# Issue 19: where a 2-core server's latency tail comes from at 150-250 default-engine streams, in one command of
# < 8 minutes on the 16-core device host. Server (1 front unless said, 2 workers) on CPUs 0-1, 4 load-generator
# processes on CPUs 2-9, one part at a time. Parts: 100 ms chunks as shipped (collections >= 1 ms logged per
# process, bench/gcprobe); the same with the cyclic collector off in the server's processes, and with higher
# collection thresholds there; with the worker's batch window off; 200 ms chunks, with and without the
# collector; 2 fronts without it; 40 ms as shipped.
#
#   OUT=/some/dir bash bench/host16_capacity_probe.sh        # from the repository root
#   QUICK=1 OUT=/tmp/q bash bench/host16_capacity_probe.sh   # smoke run on a small machine
#   SKIP="base40 gcoff200" LEVEL_SECONDS=8 ...                # fewer parts, shorter levels
set -u
OUT=${OUT:-/tmp/capacity_probe}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT/gc"
if [ "${QUICK:-0}" = 1 ]; then
  S=2; PIN="--server-cpus 0,1 --client-cpus 0,1"; L100="5 10"; L200="5"; L40="5"; NCLI=1; LIM=60
else
  S=${LEVEL_SECONDS:-10}; PIN="--server-cpus 0,1 --client-cpus 2-9"; L100="150 200"; L200="200 250"; L40="100 150"
  NCLI=4; LIM=110
fi
OFF=(GCPROBE_PROCS=bridge_server.cli,engine.worker GCPROBE_MODE=off)
THR=(GCPROBE_PROCS=bridge_server.cli,engine.worker GCPROBE_MODE=100000,50,1000)
part() {  # tag, extra environment (KEY=VAL ...), then -- and stream_bench arguments
  local tag=$1; shift
  case " ${SKIP:-} " in *" $tag "*) echo "== $tag: skipped"; return;; esac
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  mkdir -p "$OUT/gc/$tag"
  echo "== $tag: ${envs[*]} $*"
  timeout -k 5 $LIM env PYTHONPATH="$PWD/bench/gcprobe:${PYTHONPATH:-}" GCPROBE_LOG="$OUT/gc/$tag" "${envs[@]}" \
    $PY bench/stream_bench.py $PIN --workers 2 --clients $NCLI --channels 8 --seconds $S --json "$OUT/$tag.json" "$@" \
    2>&1 | grep -v '^{' | tail -3
}
part base100 -- --chunk-ms 100 --streams $L100
part gcoff100 "${OFF[@]}" -- --chunk-ms 100 --streams $L100
part gcthreshold100 "${THR[@]}" -- --chunk-ms 100 --streams $L100
part window0_100 AVATAR_BRIDGE_BATCH_WINDOW_MS=0 -- --chunk-ms 100 --streams $L100
part base200 -- --chunk-ms 200 --streams $L200
part gcoff200 "${OFF[@]}" -- --chunk-ms 200 --streams $L200
part fronts2_gcoff100 "${OFF[@]}" -- --chunk-ms 100 --fronts 2 --streams $L100
part base40 -- --chunk-ms 40 --streams $L40
$PY - "$OUT" <<'PYEOF' | tee "$OUT/summary.md"
import glob, json, os, sys
out = sys.argv[1]
print("| part | chunk ms | fronts | streams | errors | client p50 / p99 ms | p99 after 2 s | server p99 (bucket) | "
      "worker round trip p50 / p99 (bucket) | server cores (fronts) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for path in sorted(glob.glob(os.path.join(out, "*.json")), key=os.path.getmtime):
    d = json.load(open(path))
    for r in d["rows"]:
        f = lambda k, fmt=".1f": "-" if r.get(k) is None else format(r[k], fmt)  # noqa: E731
        print(f"| {os.path.basename(path)[:-5]} | {d['meta']['chunk_ms']:.0f} | {r['fronts']} | {r['streams']} | "
              f"{r['errors']} | {f('client_p50_ms')} / {f('client_p99_ms')} | {f('client_p99_steady_ms')} | "
              f"<= {r['server_p99_bucket_ms']:.0f} | <= {r.get('worker_rtt_p50_bucket_ms', float('nan')):.0f} / "
              f"{r.get('worker_rtt_p99_bucket_ms', float('nan')):.0f} | {f('server_cores_used', '.2f')} "
              f"({f('front_cores', '.2f')}) |")
print("\n(collections after start-up)\n| part | process | collections >= 1 ms | of them gen 2 | longest ms | "
      "ms in them, total |")
print("|---|---|---|---|---|---|")
for d in sorted(glob.glob(os.path.join(out, "gc", "*"))):
    kinds = {}
    for log in glob.glob(os.path.join(d, "gc-*.log")):
        startup = True  # each server process's first full collection is its own, at start (gc.collect + freeze)
        for line in open(log):
            parts = line.split(maxsplit=4)
            if startup and parts[1] == "gen2" and ("bridge_server" in parts[4] or "engine.worker" in parts[4]):
                startup = False
                continue
            cmd = parts[4]
            kind = ("front" if "bridge_server" in cmd else "worker" if "engine.worker" in cmd
                    else "load generator" if "multiprocessing" in cmd or "stream_bench" in cmd else "other")
            k = kinds.setdefault(kind, [0, 0, 0.0, 0.0])
            ms = float(parts[2])
            k[0] += 1
            k[1] += parts[1] == "gen2"
            k[2] = max(k[2], ms)
            k[3] += ms
    for kind, (n, g2, mx, tot) in sorted(kinds.items()):
        print(f"| {os.path.basename(d)} | {kind} | {n} | {g2} | {mx:.1f} | {tot:.0f} |")
PYEOF

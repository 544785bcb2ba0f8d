#!/usr/bin/env bash
# Issue 19: which stage of a live chunk's path holds the 2-core server's latency tail, and whether more CPUs
# remove it, in one command of < 6 minutes on the 16-core device host. Each part is one stream_bench run (1
# front, 2 workers, 4 load-generator processes on CPUs 4-11); its rows carry the server's latency stages
# (to_worker / in_worker / from_worker / write), the front's event-loop lag, the server threads' run-queue wait
# and the steal on the server's CPUs. Parts: the server on 2 CPUs (100 ms chunks, 150 and 200 streams; 40 ms,
# 75 and 100), on 3 CPUs and on 4 CPUs (100 ms, 200 streams).
#
#   OUT=/some/dir bash bench/host16_stage_probe.sh        # from the repository root
#   QUICK=1 OUT=/tmp/q bash bench/host16_stage_probe.sh   # smoke run on a small machine
#   SKIP="cpus3_100" LEVEL_SECONDS=8 ...                   # fewer parts, shorter levels
#   L100="150 200 250" L40="100 125" L100B=200 ...          # other levels (2-CPU 100 ms / 40 ms; 3-4 CPUs)
set -u
OUT=${OUT:-/tmp/stage_probe}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
if [ "${QUICK:-0}" = 1 ]; then
  S=2; CLI="0,1"; L100="5"; L100B="5"; L40="5"; NCLI=1; LIM=60
else
  S=${LEVEL_SECONDS:-8}; CLI="4-11"; L100=${L100:-"150 200"}; L100B=${L100B:-200}; L40=${L40:-"75 100"}; NCLI=4
  LIM=$((40 + 25 * S))
fi
part() {  # tag, server CPUs, then stream_bench arguments
  local tag=$1 cpus=$2; shift 2
  case " ${SKIP:-} " in *" $tag "*) echo "== $tag: skipped"; return;; esac
  [ "${QUICK:-0}" = 1 ] && cpus="0,1"
  echo "== $tag: server on CPUs $cpus, $*"
  timeout -k 5 $LIM $PY bench/stream_bench.py --server-cpus "$cpus" --client-cpus "$CLI" --workers 2 \
    --clients $NCLI --channels 8 --seconds $S --json "$OUT/$tag.json" --note "$tag: server CPUs $cpus" "$@" \
    2>&1 | grep -v '^{' | tail -3
}
part cpus2_100 0,1 --chunk-ms 100 --streams $L100
part cpus3_100 0-2 --chunk-ms 100 --streams $L100B
part cpus4_100 0-3 --chunk-ms 100 --streams $L100B
part cpus2_40 0,1 --chunk-ms 40 --streams $L40
$PY - "$OUT" <<'PYEOF' | tee "$OUT/summary.md"
import glob, json, os, sys
sys.path.insert(0, os.getcwd())
from bench.stream_bench import STAGES
out = sys.argv[1]
nan = float("nan")
print("| part | chunk ms | streams | errors | client p50 / p99 ms | p99 after 2 s | p99 2 s .. last 1 s | "
      "server p99 (bucket) | "
      + " | ".join(f"{s} p50 / p99" for s in STAGES) + " | loop lag p50 / p99 | run-queue wait ms/s | steal % "
      "| server cores (front) |")
print("|---|---|---|---|---|---|---|---|" + "---|" * len(STAGES) + "---|---|---|---|")
for path in sorted(glob.glob(os.path.join(out, "*.json")), key=os.path.getmtime):
    d = json.load(open(path))
    for r in d["rows"]:
        f = lambda k, fmt=".1f": "-" if r.get(k) is None else format(r[k], fmt)  # noqa: E731
        st = r.get("stage_p50_p99_bucket_ms", {})
        lag = r.get("loop_lag_p50_p99_bucket_ms", (nan, nan))
        print(f"| {os.path.basename(path)[:-5]} | {d['meta']['chunk_ms']:.0f} | {r['streams']} | {r['errors']} | "
              f"{f('client_p50_ms')} / {f('client_p99_ms')} | {f('client_p99_steady_ms')} | {f('client_p99_middle_ms')} | "
              f"<= {r['server_p99_bucket_ms']:.0f} | "
              + " | ".join("<= {:.0f} / {:.0f}".format(*st.get(s, (nan, nan))) for s in STAGES)
              + f" | <= {lag[0]:.0f} / {lag[1]:.0f} | {f('server_runqueue_wait_ms_per_s', '.0f')} | "
              f"{f('server_cpu_steal_pct')} | {f('server_cores_used', '.2f')} ({f('front_cores', '.2f')}) |")
PYEOF

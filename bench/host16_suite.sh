#!/usr/bin/env bash
# Issues 18 and 19 on the 16-core device host in one command of < 9 minutes: stream capacity (default engine,
# fronts 1 vs 2, 40 ms and 100 ms chunks; dsp-v1; learned-v1), TLS cost at 50 streams, and 1 vs 3 backends behind
# the shipped HAProxy. Each part pins its server(s) and its load generator to cores of their own.
#
#   OUT=/some/dir bash bench/host16_suite.sh            # from the repository root
#   QUICK=1 OUT=/tmp/q bash bench/host16_suite.sh       # a smoke run of every part on a small machine (2 cores)
#
# Phase 1 runs three parts AT THE SAME TIME on disjoint cores (default engine on 0-5, TLS on 6-9, dsp-v1 and
# learned-v1 on 10-15); they share the memory bus and the last-level cache, nothing else. Phase 2 (HAProxy) runs
# alone on all 16. Each part has a `timeout`, every level is logged as one JSON line as it ends ($OUT/suite.log),
# and the summary ($OUT/summary.md, printed last) falls back to those lines for a part that was cut short.
# HAProxy: used from the PATH if there, else unpacked from the carried Debian 12 packages ($CARRY/debs, dpkg -x,
# never installed into /). TLS certificates: made with openssl if there, else taken from $CARRY/pki.
set -u
OUT=${OUT:-/tmp/host16_out}
CARRY=${CARRY:-.carry}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
LOG=$OUT/suite.log
T0=$(date +%s)
say() { echo "[suite +$(($(date +%s) - T0))s] $*" | tee -a "$LOG"; }

if [ "${QUICK:-0}" = 1 ]; then  # every part, tiny, unpinned-ish (all on CPUs 0,1)
  S=3; A_SRV=0,1; A_CLI=0,1; C_SRV=0,1; C_CLI=0,1; D_SRV=0,1; D_CLI=0,1; NCLI=2; TLS_S=2; TLS_ROUNDS=1
  A40="10 20"; A100="10"; DSP="10"; LV1="10"; LB_PER="5 10"; LB_PIN="--no-pin"; LB_CLI="--client-cpus 0,1"
  TLS_N=5; PART_T=120; TLS_T=120; LB_T=150
else
  S=${LEVEL_SECONDS:-10}; A_SRV=0,1; A_CLI=2-5; C_SRV=6,7; C_CLI=8,9; D_SRV=10,11; D_CLI=12-15; NCLI=4
  TLS_S=15; TLS_ROUNDS=3
  A40="100 150 200 250"; A100="150 200 250 300"; DSP="100 150 200"; LV1="75 100 150"; LB_PER="75 100 150 200"
  LB_PIN="--proxy-cpus 6,7"; LB_CLI="--client-cpus 8-15"; TLS_N=50
  # Limits, so that the whole suite ends within 9 minutes even if every part runs into its limit: phase 1 is two
  # parts of <= 150 s on each side (expected ~110 s each), phase 2 <= 180 s (expected ~120 s).
  PART_T=150; TLS_T=240; LB_T=180
fi

# One part: a `timeout` around it (its whole process group: servers, fronts, workers, client processes), each
# output line tagged and appended to the log as it comes.
part() {
  local tag=$1 limit=$2; shift 2
  say "start $tag: $*"
  timeout -k 10 "$limit" "$@" 2>&1 | sed -u "s/^/[$tag] /" >>"$LOG"
  say "end $tag: exit ${PIPESTATUS[0]}"
}

setup_haproxy() {
  if command -v haproxy >/dev/null && [ "${FORCE_CARRIED_HAPROXY:-0}" != 1 ]; then return 0; fi
  local d=/tmp/hap libs m f
  rm -rf $d && mkdir -p $d/bin $d/lib $d/fb || return 1
  for f in "$CARRY"/debs/*.deb; do dpkg -x "$f" $d || return 1; done
  libs=$d/usr/lib/x86_64-linux-gnu:$d/lib/x86_64-linux-gnu:$d/lib
  # Libraries the host lacks come from Debian 12's packages (debs/fallback), only those: three passes, since a
  # library taken may need another.
  for f in "$CARRY"/debs/fallback/*.deb; do [ -e "$f" ] && dpkg -x "$f" $d/fb; done
  for _ in 1 2 3; do
    for m in $(LD_LIBRARY_PATH=$libs ldd $d/usr/sbin/haproxy | awk '/not found/ {print $1}'); do
      f=$(find $d/fb -name "$m" | head -1)
      [ -n "$f" ] && cp -L "$f" $d/lib/ && say "haproxy: $m from the carried Debian 12 package"
    done
  done
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$libs" "$d/usr/sbin/haproxy" >$d/bin/haproxy
  chmod +x $d/bin/haproxy
  export PATH=$d/bin:$PATH
}

say "host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load $(cut -d' ' -f1-3 /proc/loadavg)"
$PY -c "import grpc, google.protobuf as p, zmq, soundfile, soxr, numpy, prometheus_client, grpc_health, pythonosc
print('python deps: grpcio', grpc.__version__, 'protobuf', p.__version__, p.__file__, 'numpy', numpy.__version__)
import avatarbridge.v1.bridge_pb2_grpc, bridge_server.server, engine.worker.main" 2>&1 | tee -a "$LOG" \
  || { say "FATAL: the Python dependencies do not import"; exit 1; }
setup_haproxy || say "haproxy setup failed (phase 2 will say so)"
haproxy -v 2>&1 | head -1 | tee -a "$LOG"
PKI=()
command -v openssl >/dev/null || PKI=(--pki "$CARRY/pki")

say "phase 1: default engine on CPUs $A_SRV (clients $A_CLI) | TLS on $C_SRV (client $C_CLI) | dsp-v1 + learned-v1 on $D_SRV (clients $D_CLI), concurrently"
COMMON=(--workers 2 --clients $NCLI --channels 8 --seconds $S)
(
  part default40 $PART_T $PY bench/stream_bench.py --fronts 1 2 --server-cpus $A_SRV --client-cpus $A_CLI \
    "${COMMON[@]}" --chunk-ms 40 --streams $A40 --json "$OUT/default_40ms.json" --note "phase 1, concurrent parts"
  part default100 $PART_T $PY bench/stream_bench.py --fronts 1 2 --server-cpus $A_SRV --client-cpus $A_CLI \
    "${COMMON[@]}" --chunk-ms 100 --streams $A100 --json "$OUT/default_100ms.json" --note "phase 1, concurrent parts"
) &
(
  part tls $TLS_T $PY bench/tls_bench.py --streams $TLS_N --seconds $TLS_S --rounds $TLS_ROUNDS \
    --server-cpus $C_SRV --client-cpus $C_CLI "${PKI[@]}" --json "$OUT/tls.json"
) &
(
  part dsp $PART_T $PY bench/stream_bench.py --engine dsp-v1 --fronts 1 2 --server-cpus $D_SRV --client-cpus $D_CLI \
    "${COMMON[@]}" --chunk-ms 40 --streams $DSP --json "$OUT/dsp-v1_40ms.json" --note "phase 1, concurrent parts"
  part learned1 $PART_T $PY bench/stream_bench.py --engine learned-v1 --fronts 1 2 --server-cpus $D_SRV \
    --client-cpus $D_CLI "${COMMON[@]}" --chunk-ms 40 --streams $LV1 --json "$OUT/learned-v1_40ms.json" \
    --note "phase 1, concurrent parts"
) &
wait

say "phase 2: 1 vs 3 backends (2 CPUs, 2 fronts, 2 workers each) behind HAProxy, alone on the host"
part lb $LB_T $PY bench/lb_bench.py --backends 1 3 --cores-per-backend 2 --fronts 2 $LB_PIN $LB_CLI \
  --clients $((NCLI * 2)) --channels 8 --per-backend $LB_PER --seconds $S --chunk-ms 40 --json "$OUT/lb.json"

say "done"
$PY bench/host16_summary.py "$OUT" | tee "$OUT/summary.md"

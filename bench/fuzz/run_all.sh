#!/usr/bin/env bash
# The long fuzz run of docs/reliability.md: every target for RUNS inputs, JOBS at a time, at nice 19.
#   bench/fuzz/run_all.sh [RUNS=100000] [JOBS=2] [LOGDIR=bench/fuzz/logs] [TARGET ...]
# Each target's log ends with libFuzzer's "Done N runs in S second(s)" (clean) or the crash / timeout report
# and the path of the reproducer; a summary line per target goes to LOGDIR/summary.txt.
set -u
cd "$(dirname "$0")/../.."
RUNS=${1:-100000}; JOBS=${2:-2}; LOGDIR=${3:-bench/fuzz/logs}; shift $(( $# < 3 ? $# : 3 ))
PY=${PYTHON:-$(command -v python)}
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=($(ls bench/fuzz/fuzz_*.py | sed 's|.*/fuzz_\(.*\)\.py|\1|'))
fi
mkdir -p "$LOGDIR"
one() {
  t=$1
  start=$(date +%s)
  # mpg123 and ffmpeg print a line per damaged frame: left out of the log
  nice -n 19 "$PY" "bench/fuzz/fuzz_$t.py" -atheris_runs="$RUNS" -seed=1 -print_final_stats=1 \
      -artifact_prefix="$LOGDIR/$t-" 2>&1 | grep -av -e '^Note: ' -e '^\[' -e ' NEW ' -e ' REDUCE ' > "$LOGDIR/$t.log"
  rc=${PIPESTATUS[0]}
  done_line=$(grep -a '^Done ' "$LOGDIR/$t.log" | tail -1)
  echo "$t rc=$rc wall_s=$(( $(date +%s) - start )) ${done_line:-NO 'Done' LINE (crash or hang: see $LOGDIR/$t.log)}" \
      | tee -a "$LOGDIR/summary.txt"
}
export -f one; export RUNS LOGDIR PY
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'one {}'

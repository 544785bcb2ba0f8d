"""Collector diagnostics for capacity runs (bench/host16_capacity_probe.sh); nothing else imports this.

Put this folder first on PYTHONPATH and every Python process started under it (server fronts, workers, load
generators) loads it at start:
  GCPROBE_LOG=DIR     each process appends every collection that took >= 1 ms to DIR/gc-<pid>.log
                      (wall time, generation, ms, objects collected, its command line)
  GCPROBE_PROCS=A,B   the processes whose command line contains A or B (e.g. the server's) run with
  GCPROBE_MODE=off             the cyclic collector off (a 10-second load level allocates too little for
                               that to matter to memory), or
  GCPROBE_MODE=T0,T1,T2        these collection thresholds (gc.set_threshold)
"""
import gc
import os
import sys
import time

_argv = " ".join(getattr(sys, "orig_argv", sys.argv))
if any(t and t in _argv for t in os.environ.get("GCPROBE_PROCS", "").split(",")):
    _mode = os.environ.get("GCPROBE_MODE", "")
    if _mode == "off":
        gc.disable()
    elif _mode:
        gc.set_threshold(*(int(x) for x in _mode.split(",")))
if os.environ.get("GCPROBE_LOG"):
    _path = os.path.join(os.environ["GCPROBE_LOG"], f"gc-{os.getpid()}.log")
    _t = [0.0]

    def _timed(phase, info):
        if phase == "start":
            _t[0] = time.perf_counter()
            return
        ms = (time.perf_counter() - _t[0]) * 1000
        if ms >= 1.0:
            with open(_path, "a") as fh:
                fh.write(f"{time.time():.3f} gen{info['generation']} {ms:.1f} ms {info['collected']} {_argv[:100]}\n")

    gc.callbacks.append(_timed)

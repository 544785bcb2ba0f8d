"""Collector diagnostics for capacity runs (bench/host16_capacity_probe.sh); nothing else imports this.

Put this folder first on PYTHONPATH and every Python process started under it (server fronts, workers, load
generators) loads it at start:
  GCPROBE_LOG=DIR     each process appends every collection that took >= 1 ms to DIR/gc-<pid>.log
                      (wall time, generation, ms, objects collected, its command line)
  GCPROBE_OFF=A,B     processes whose command line contains A or B run with the cyclic collector off
                      (a 10-second load level allocates too little for that to matter to memory)
"""
import gc
import os
import sys
import time

_argv = " ".join(getattr(sys, "orig_argv", sys.argv))
if any(t and t in _argv for t in os.environ.get("GCPROBE_OFF", "").split(",")):
    gc.disable()
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

"""Shared start-up for the atheris targets in bench/fuzz/ (see docs/reliability.md).

Every target is ``python bench/fuzz/fuzz_<name>.py [libFuzzer flags] [CORPUS_DIR ...]``. With no corpus
directory named, the corpus is built (bench/fuzz/make_corpus.py) into a cache directory and new inputs the
fuzzer finds are added there. Defaults added unless given: ``-timeout=5`` (an input that runs over 5 s is a
hang: libFuzzer stops with "timeout"), ``-rss_limit_mb=2048`` (an input that makes the process grow past
2 GiB is a crash) and the target's ``-max_len``; crash reproducers go to ``-artifact_prefix`` (default: the
system temp dir).

A "crash" is any exception that escapes the target's ``one_input``: each target catches only the decoder's
documented, user-facing error type (named in its docstring) and checks what a successful decode returns.
Reproduce one input with ``python bench/fuzz/fuzz_<name>.py CRASH_FILE``.
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def main(name: str, one_input, max_len: int = 8192) -> None:
    import atheris

    argv = list(sys.argv)
    flags = [a for a in argv[1:] if a.startswith("-")]
    paths = [a for a in argv[1:] if not a.startswith("-")]
    defaults = {"-timeout": "5", "-rss_limit_mb": "2048", "-max_len": str(max_len),
                "-artifact_prefix": os.path.join(tempfile.gettempdir(), f"fuzz-{name}-")}
    for flag, value in defaults.items():
        if not any(f.startswith(flag + "=") for f in flags):
            flags.append(f"{flag}={value}")
    if not paths:
        from bench.fuzz.make_corpus import build

        paths = [str(build(name))]
    atheris.Setup([argv[0], *flags, *paths], one_input)
    atexit.register(_stop_alarm)
    atheris.Fuzz()


def _stop_alarm() -> None:
    """libFuzzer's -timeout is a periodic SIGALRM; after "Done" it keeps firing through the interpreter's
    slow teardown (torch, PyAV), and with Python's handlers gone it killed finished runs (exit status 142)."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)

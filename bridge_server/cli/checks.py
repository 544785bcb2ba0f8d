"""What the CLI checks and says before and after a command runs: output formats, missing optional packages,
and an interrupted client (SIGTERM / Ctrl-C) that keeps the frames it already received."""
from __future__ import annotations

import contextlib
import os
import signal
import sys

FRAME_FORMATS = (".json", ".csv")  # Animation.write

# Optional packages -> the pip extra (and anything else) that brings them.
_OPTIONAL = {
    **dict.fromkeys(["moderngl", "pygltflib", "meshopt"],
                    "pip install 'avatar-bridge[render]' (Debian also needs libegl1 libegl-mesa0 libgl1 "
                    "libgl1-mesa-dri)"),
    **dict.fromkeys(["torch"],
                    "pip install torch (CPU-only: --index-url https://download.pytorch.org/whl/cpu), then "
                    "pip install 'avatar-bridge[video]'"),
    **dict.fromkeys(["diffusers", "transformers", "safetensors", "tokenizers", "huggingface_hub", "tqdm"],
                    "pip install 'avatar-bridge[video]'"),
    "aiohttp": "pip install 'avatar-bridge[console]'",  # the web console (`avatar-bridge console`)
}


def frames_out_problem(path: str | None, flag: str = "--out") -> str:
    """'' when PATH names a frames format this CLI writes, else one line saying which ones it does."""
    if path is None:
        return ""
    ext = os.path.splitext(path)[1].lower()
    if ext in FRAME_FORMATS:
        return ""
    what = f"extension {ext!r}" if ext else "no extension"
    return (f"{flag} {path} has {what}; frames are written as .json or .csv (chosen by the extension; "
            "docs/output_formats.md)")


def missing_package_message(command: str, exc: ModuleNotFoundError) -> str | None:
    """One line for an optional package that is not installed; None for any other missing module (a bug)."""
    root = (exc.name or "").split(".")[0]
    fix = _OPTIONAL.get(root)
    if fix is None:
        return None
    return f"avatar-bridge {command}: needs the Python package {root!r}, which is not installed; {fix}"


class Interrupted(BaseException):
    """SIGTERM arrived while a client command was receiving frames."""


@contextlib.contextmanager
def sigterm_raises():
    """Inside the block SIGTERM raises Interrupted (like Ctrl-C raises KeyboardInterrupt) so the command can
    write what it has received before it exits."""
    def on_term(signum, frame):
        raise Interrupted()

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def write_partial(command: str, anim, out: str | None, why: BaseException, extra=()) -> int:
    """Write the frames received before the interrupt (and any `extra` (path, writer) outputs that have data),
    say they are partial; exit 143 (SIGTERM) or 130 (Ctrl-C)."""
    sig = "SIGTERM" if isinstance(why, Interrupted) else "Ctrl-C"
    rc = 143 if isinstance(why, Interrupted) else 130
    written = []
    if out and anim.header is not None and anim.frames:
        anim.partial = True
        anim.write(out)
        written.append(f"the {len(anim.frames)} frames received so far (up to {anim.frames[-1].time:.2f} s) to {out}")
    for path, writer in extra:
        writer(path)
        written.append(f"the audio received so far to {path}")
    if not written:
        print(f"avatar-bridge {command}: interrupted ({sig}) before any frames arrived; nothing was written",
              file=sys.stderr)
        return rc
    print(f"avatar-bridge {command}: interrupted ({sig}): wrote {' and '.join(written)}; PARTIAL: no final "
          "status, the rest is missing", file=sys.stderr)
    return rc

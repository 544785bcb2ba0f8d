"""Rhubarb Lip Sync (DanielSWolf/rhubarb-lip-sync) as a peer row for the expression evaluation.

For side-by-side measurement only: the Rhubarb binary is built outside this repository
(docs/peers.md) and run as a subprocess; none of its code is here.

Rhubarb is **offline / whole-file**: it reads a complete recording (and optionally its dialog
text), runs speech recognition over all of it and only then prints its mouth cues. It cannot
stream, so its row measures what an offline tool reaches with the whole utterance in hand, not a
live engine (ours animate 40 ms chunks as they arrive).

Output: a list of mouth cues ``(start_s, end_s, shape)`` with the shapes A-F (basic) and G, H, X
(extended). For the evaluation (jawOpen per frame) each shape becomes one jaw-opening value, picked
from how far open the mouth is in Rhubarb's own description of the shape (its README):

    ===== ============================================================== =======
    shape Rhubarb's description                                          jawOpen
    ===== ============================================================== =======
    X     idle / rest: lips closed, relaxed (pauses)                     0.00
    A     closed mouth, slight lip pressure (P, B, M)                    0.00
    G     upper teeth on the lower lip (F, V)                            0.10
    B     slightly open, clenched teeth (K, S, T, ..., EE)               0.15
    F     puckered lips (UW, OW, W)                                      0.20
    E     slightly rounded (AO, ER); "not wider open than C"             0.35
    C     open mouth (EH, AE)                                            0.45
    H     long L, tongue up; "at least as open as C, less than D"        0.55
    D     wide open (AA)                                                 0.75
    ===== ============================================================== =======

The scale is irrelevant to the evaluation's Pearson r and AUC; only the order and the spacing of
the values matter. Frame k (time k / fps) takes the value of the cue active at that time
(start <= t < end); before the first and after the last cue the mouth is at rest (X).

Use::

    python -m bench.peers.rhubarb some.wav [--text "the dialog"] [--recognizer phonetic] [--fps 30]

The binary is ``$RHUBARB_BIN`` or the one built at /work/peers/rhubarb-build (see docs/peers.md).
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

SAMPLE_RATE = 16000
RECOGNIZERS = ("pocketSphinx", "phonetic")
DEFAULT_BUILD = Path("/work/peers/rhubarb-build")

#: Rhubarb mouth shape -> jawOpen (see the module docstring for the reasoning).
SHAPE_JAW: dict[str, float] = {
    "X": 0.00,
    "A": 0.00,
    "G": 0.10,
    "B": 0.15,
    "F": 0.20,
    "E": 0.35,
    "C": 0.45,
    "H": 0.55,
    "D": 0.75,
}
REST = "X"


def find_rhubarb() -> Optional[str]:
    """Path of the Rhubarb binary: ``$RHUBARB_BIN`` if it names a file, else the first executable
    named ``rhubarb`` under /work/peers/rhubarb-build (the binary needs its ``res/`` folder beside
    it, as the build leaves it). None when neither exists."""
    env = os.environ.get("RHUBARB_BIN")
    if env and Path(env).is_file():
        return env
    for cand in [DEFAULT_BUILD / "rhubarb" / "rhubarb", DEFAULT_BUILD / "rhubarb"]:
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    if DEFAULT_BUILD.is_dir():
        for cand in sorted(DEFAULT_BUILD.rglob("rhubarb")):
            if cand.is_file() and os.access(cand, os.X_OK) and (cand.parent / "res").is_dir():
                return str(cand)
    return None


def _binary(binary: Optional[str]) -> str:
    b = binary or find_rhubarb()
    if not b:
        raise FileNotFoundError("Rhubarb binary not found: set RHUBARB_BIN or build it (docs/peers.md)")
    return b


def _write_pcm16(path: str, x: np.ndarray) -> None:
    import soundfile as sf

    sf.write(path, np.clip(np.asarray(x, np.float32), -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")


def _to_16k_mono(x: np.ndarray, sr: int) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sr != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, sr, SAMPLE_RATE).astype(np.float32)
    return x


def _needs_conversion(wav_path: str) -> bool:
    import soundfile as sf

    try:
        info = sf.info(wav_path)
    except Exception:
        return True
    return not (info.format == "WAV" and info.subtype == "PCM_16" and info.channels == 1
                and info.samplerate == SAMPLE_RATE)


def _parse_cues(doc: dict) -> list[tuple[float, float, str]]:
    return [(float(c["start"]), float(c["end"]), str(c["value"])) for c in doc.get("mouthCues", [])]


def rhubarb_cues(wav_path: str | os.PathLike, dialog_text: Optional[str] = None, recognizer: str = "pocketSphinx",
                 binary: Optional[str] = None, threads: Optional[int] = None,
                 timeout: float = 600.0) -> list[tuple[float, float, str]]:
    """Rhubarb's mouth cues for a sound file: ``[(start_s, end_s, shape), ...]``, shape in A-H or X.

    The input is first converted to a 16 kHz mono 16-bit PCM wav in a temp file unless it already is
    one (soundfile reads it, soxr resamples). ``dialog_text`` is passed as ``--dialogFile`` (a temp
    file); ``recognizer`` is ``pocketSphinx`` (Rhubarb's default, English word recognition) or
    ``phonetic`` (language-independent phone recognition). Whole-file, offline."""
    if recognizer not in RECOGNIZERS:
        raise ValueError(f"recognizer must be one of {RECOGNIZERS}, not {recognizer!r}")
    exe = _binary(binary)
    with tempfile.TemporaryDirectory(prefix="rhubarb-") as tmp:
        src = str(wav_path)
        if _needs_conversion(src):
            import soundfile as sf

            x, sr = sf.read(src, dtype="float32", always_2d=False)
            src = os.path.join(tmp, "in.wav")
            _write_pcm16(src, _to_16k_mono(x, sr))
        cmd = [exe, "-q", "-f", "json", "-r", recognizer]
        if threads:
            cmd += ["--threads", str(int(threads))]
        if dialog_text and dialog_text.strip():
            dlg = os.path.join(tmp, "dialog.txt")
            Path(dlg).write_text(dialog_text.strip() + "\n", encoding="utf-8")
            cmd += ["--dialogFile", dlg]
        out = os.path.join(tmp, "cues.json")
        cmd += ["-o", out, src]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"rhubarb failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return _parse_cues(json.loads(Path(out).read_text(encoding="utf-8")))


def cues_to_jaw(cues: list[tuple[float, float, str]], fps: float, n: int,
                table: dict[str, float] = SHAPE_JAW) -> np.ndarray:
    """jawOpen of frame k (time k / fps) = table[shape of the cue with start <= t < end], rest elsewhere."""
    out = np.full(n, table[REST], np.float64)
    t = np.arange(n) / float(fps)
    for start, end, shape in cues:
        out[(t >= start) & (t < end)] = table.get(shape, table[REST])
    return out


def rhubarb_jaw(x: np.ndarray, fps: int, n: int, dialog_text: Optional[str] = None,
                recognizer: str = "pocketSphinx", binary: Optional[str] = None) -> np.ndarray:
    """jawOpen per frame (n,) for float32 mono 16 kHz audio ``x``, from Rhubarb's cues mapped with
    SHAPE_JAW; frame k is at time k / fps. Runs Rhubarb once over the whole signal (offline)."""
    with tempfile.TemporaryDirectory(prefix="rhubarb-in-") as tmp:
        wav = os.path.join(tmp, "x.wav")
        _write_pcm16(wav, np.asarray(x, np.float32).reshape(-1))
        cues = rhubarb_cues(wav, dialog_text, recognizer, binary)
    return cues_to_jaw(cues, fps, n)


def rhubarb_row(binary: Optional[str] = None, recognizer: str = "pocketSphinx",
                use_transcript: bool = False) -> Callable:
    """A row for engine.expression.evaluate's ``extra``: f(audio16k, clip, fps, n) -> jawOpen (n,).
    With ``use_transcript`` the clip's transcript (when it has one) is given to Rhubarb as dialog text;
    ``clip`` is None for the phone-aligned set."""
    exe = _binary(binary)

    def row(x: np.ndarray, clip, fps: int, n: int) -> np.ndarray:
        text = getattr(clip, "transcript", None) if use_transcript else None
        return rhubarb_jaw(x, fps, n, text, recognizer, exe)

    return row


def _main(argv: Optional[list[str]] = None) -> int:
    import argparse
    import time

    import soundfile as sf

    ap = argparse.ArgumentParser(description="Rhubarb Lip Sync mouth cues and jawOpen for a sound file")
    ap.add_argument("wav")
    ap.add_argument("--text", help="dialog text (passed as --dialogFile)")
    ap.add_argument("--recognizer", default="pocketSphinx", choices=RECOGNIZERS)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--bin", help="Rhubarb binary (default: $RHUBARB_BIN or the /work/peers build)")
    a = ap.parse_args(argv)

    x, sr = sf.read(a.wav, dtype="float32", always_2d=False)
    x = _to_16k_mono(x, sr)
    n = -(-x.size * a.fps // SAMPLE_RATE)
    print(f"binary: {_binary(a.bin)}")
    t0 = time.perf_counter()
    cues = rhubarb_cues(a.wav, a.text, a.recognizer, a.bin)
    dt = time.perf_counter() - t0
    print(f"{len(cues)} cues for {x.size / SAMPLE_RATE:.2f} s of audio in {dt:.2f} s wall ({a.recognizer})")
    for s, e, shape in cues:
        print(f"  {s:6.2f} {e:6.2f}  {shape}  jaw={SHAPE_JAW.get(shape, 0.0):.2f}")
    jaw = cues_to_jaw(cues, a.fps, n)
    print(f"jawOpen at {a.fps} fps ({n} frames):")
    print(" ".join(f"{v:.2f}" for v in jaw))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())

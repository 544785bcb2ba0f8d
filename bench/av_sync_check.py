"""How far apart are a talking-head clip's audio and lips? (data check for docs/quality.md)

For each video: the speaker's inner-lip aperture per frame (engine.capture, unsmoothed) against the
audio's RMS envelope (40 ms window) shifted by -1..+1 s in 20 ms steps. Prints r at 0 and the best
shift. A positive shift = the sound comes that much *after* the lips that made it. Engine-independent:
no expression engine is involved.

    python bench/av_sync_check.py ../shared/data/video --model ../shared/data/models/face_landmarker.task
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.capture import CaptureSettings, capture_video_file, lip_aperture  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("video_dir")
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    print("| clip | r(aperture, RMS) at 0 | best r | at shift |")
    print("|---|---|---|---|")
    for f in sorted(pathlib.Path(args.video_dir).glob("*.mp4")):
        v = capture_video_file(str(f), args.model, CaptureSettings(smoothing=False))
        aper = lip_aperture(v.landmarks, v.info.width, v.info.height)
        x, sr, win = v.audio, v.sample_rate, int(0.02 * v.sample_rate)
        ok = v.found & np.isfinite(aper)
        res = {}
        for shift_ms in range(-1000, 1001, 20):
            t = (v.times - v.audio_start + shift_ms / 1000) * sr
            rms = np.array([np.sqrt(np.mean(x[max(0, int(c) - win):max(1, int(c) + win)] ** 2))
                            if 0 <= c < len(x) else 0.0 for c in t])
            res[shift_ms] = float(np.corrcoef(rms[ok], aper[ok])[0, 1])
        best = max(res, key=res.get)
        print(f"| {f.name} | {res[0]:.2f} | {res[best]:.2f} | {best:+d} ms |")


if __name__ == "__main__":
    main()

"""How wide the mouth opens: real speakers vs an engine driving an ARKit rig (docs/quality.md, "Mouth range").

1. Rig curve: an ARKit avatar is rendered with jawOpen = 0..1 (everything else at rest) and measured
   with the Capture module: inner-lip aperture / face height as a function of jawOpen.
2. Real faces: the same aperture on every talking-head clip's speech frames (the capture cache of
   eval-expression), per speaker: the 50th / 90th / 99th percentiles.
3. An engine's jawOpen on each clip's audio, mapped through the rig curve: the aperture the avatar would
   show. The ratio of real to avatar aperture at the 90th percentile, per speaker, is what the mouth gain
   should be; its median over speakers (and each speaker left out in turn) is reported.

    python bench/mouth_range.py --avatar ../shared/data/avatars/brunette-t.glb \\
        --manifest bench/data/media_sources.json --media-root /work/media --engines learned-v2 learned-v1 dsp-v1
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.expression.evaluate import (PRED_FPS, capture_clip, clips_in_dir, clips_in_manifest,  # noqa: E402
                                        engine_jaw, load_engines, rms_flap)
from engine.rig import ARKIT_INDEX  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def rig_curve(avatar: str, face_model: str, steps: int = 21) -> tuple[np.ndarray, np.ndarray]:
    from engine.capture import CaptureSettings, FaceCapture, lip_aperture
    from engine.render import Avatar, FaceRenderer

    av = Avatar.load(avatar)
    jaw = np.linspace(0.0, 1.0, steps)
    rot = np.zeros((4, 4), np.float32)
    rot[:, 3] = 1.0
    ap = []
    cap = FaceCapture(face_model, CaptureSettings(smoothing=False))
    with FaceRenderer(av, 512, 512) as r:
        for k, v in enumerate(jaw):
            w = np.zeros(52, np.float32)
            w[ARKIT_INDEX["jawOpen"]] = v
            rgb = r.render(w, rot)
            f = cap.process(rgb, k * 33_333)
            ap.append(float(lip_aperture(f.landmarks[None], 512, 512)[0]) if f.landmarks is not None else np.nan)
    cap.close()
    return jaw, np.array(ap)


def speech_frames(truth, audio: np.ndarray) -> np.ndarray:
    """Video frames with a face whose 40 ms of audio is within 20 dB of the clip's loud speech."""
    n = -(-audio.size * PRED_FPS // 16000)
    rms = rms_flap(audio, PRED_FPS, n)
    lvl = np.interp(truth.times, np.arange(n) / PRED_FPS, rms)
    ref = np.percentile(rms, 95) + 1e-9
    return truth.found & (lvl > ref * 0.1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--avatar", default=str(SHARED / "avatars" / "brunette-t.glb"))
    ap.add_argument("--face-model", default=str(SHARED / "models" / "face_landmarker.task"))
    ap.add_argument("--videos", nargs="*", default=[str(SHARED / "video")])
    ap.add_argument("--manifest", nargs="*", default=[])
    ap.add_argument("--media-root")
    ap.add_argument("--engines", nargs="*")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "avatar-bridge" / "capture"))
    args = ap.parse_args()

    jaw_grid, ap_grid = rig_curve(args.avatar, args.face_model)
    ok = np.isfinite(ap_grid)
    ap_grid = np.maximum.accumulate(np.where(ok, ap_grid, 0.0))
    print("rig curve (jawOpen -> aperture / face height):",
          ", ".join(f"{j:.2f}:{a:.3f}" for j, a in zip(jaw_grid[::4], ap_grid[::4])))
    clips = [c for d in args.videos for c in clips_in_dir(Path(d))]
    for m in args.manifest:
        clips += clips_in_manifest(Path(m), Path(args.media_root) if args.media_root else None)
    engines = load_engines(args.engines)
    per: dict[str, dict[str, list]] = {}
    for clip in clips:
        truth, audio = capture_clip(clip.path, Path(args.face_model), Path(args.cache), clip.audio)
        if audio.size == 0:
            continue
        m = speech_frames(truth, audio)
        if m.sum() < 20:
            continue
        spk = per.setdefault(clip.speaker, {"real": []})
        spk["real"].append(truth.aperture[m])
        n = -(-audio.size * PRED_FPS // 16000)
        for name, eng in engines.items():
            j = np.interp(truth.times, np.arange(n) / PRED_FPS, engine_jaw(eng, audio, PRED_FPS, n))
            spk.setdefault(name, []).append(np.interp(j[m], jaw_grid, ap_grid) - ap_grid[0])
    print(f"{len(per)} speakers")
    print("| engine | aperture p50 | p90 | p99 | real/avatar at p90: median over speakers | leave-one-speaker-out range |")
    print("|---|---|---|---|---|---|")
    real = {s: np.concatenate(v["real"]) for s, v in per.items()}
    allreal = np.concatenate(list(real.values()))
    print(f"| real speakers | {np.percentile(allreal, 50):.3f} | {np.percentile(allreal, 90):.3f} "
          f"| {np.percentile(allreal, 99):.3f} | - | - |")
    for name in engines:
        av = {s: np.concatenate(v[name]) for s, v in per.items()}
        ratio = {s: np.percentile(real[s], 90) / max(1e-4, np.percentile(av[s], 90)) for s in per}
        loo = [np.median([ratio[t] for t in per if t != s]) for s in per]
        allav = np.concatenate(list(av.values()))
        print(f"| {name} | {np.percentile(allav, 50):.3f} | {np.percentile(allav, 90):.3f} "
              f"| {np.percentile(allav, 99):.3f} | {np.median(list(ratio.values())):.2f} "
              f"| {min(loo):.2f}..{max(loo):.2f} |")


if __name__ == "__main__":
    main()

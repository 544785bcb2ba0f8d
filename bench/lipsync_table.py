"""The lip-sync table of docs/quality.md: every engine, the baselines, the offline teacher, the transcript
mode and a real peer (Rhubarb Lip Sync, built from source: docs/peers.md) on every real clip we have.

    python bench/lipsync_table.py --manifest bench/data/media_sources.json --media-root /work/media \\
        --align ../shared/data/align /work/media/align --json eval.json

Rows: rms-flap (amplitude lip-flap), each registered engine, ps-phones-offline (the pocketsphinx teacher
over each whole clip), <default>+transcript (clips with a known transcript), rhubarb-1.14 (whole-file,
pocketSphinx recogniser) and, on clips with a transcript, rhubarb-1.14+dialog. Peers are skipped, with a
note, when their binary is missing.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.expression.evaluate import clips_in_dir, clips_in_manifest, run, transcript_row  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", nargs="*", default=[str(SHARED / "video")])
    ap.add_argument("--manifest", nargs="*", default=[])
    ap.add_argument("--media-root")
    ap.add_argument("--align", nargs="*", default=[str(SHARED / "align")])
    ap.add_argument("--engines", nargs="*")
    ap.add_argument("--face-model", default=str(SHARED / "models" / "face_landmarker.task"))
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "avatar-bridge" / "capture"))
    ap.add_argument("--rhubarb", help="Rhubarb binary (default: $RHUBARB_BIN or the docs/peers.md build)")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()

    clips = [c for d in args.videos if Path(d).is_dir() for c in clips_in_dir(Path(d))]
    for m in args.manifest:
        clips += clips_in_manifest(Path(m), Path(args.media_root) if args.media_root else None)
    from engine.expression.train.teacher import PhoneTeacher, teacher_jaw

    teacher = PhoneTeacher()
    extra = {"ps-phones-offline": lambda x, clip, fps, n: teacher_jaw(x, fps, n, teacher)}
    extra.update(transcript_row(args.engines))
    if not args.no_peers:
        from bench.peers.rhubarb import find_rhubarb, rhubarb_row

        exe = args.rhubarb or find_rhubarb()
        if exe:
            extra["rhubarb-1.14"] = rhubarb_row(exe)
            with_text = rhubarb_row(exe, use_transcript=True)
            extra["rhubarb-1.14+dialog"] = lambda x, clip, fps, n: (
                with_text(x, clip, fps, n) if clip is not None and clip.transcript else None)
        else:
            print("note: no Rhubarb binary (docs/peers.md); its rows are left out", file=sys.stderr)
    run(clips, [Path(a) for a in args.align], args.engines, Path(args.face_model), Path(args.cache),
        Path(args.json) if args.json else None, extra=extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())

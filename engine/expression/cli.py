"""`avatar-bridge train-expression` and `avatar-bridge eval-expression` (argparse only; heavy imports lazy)."""
from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "weights" / "learned-v1"
_SHARED = Path.cwd().parent / "shared" / "data"


def add_expression_commands(sub) -> None:
    tr = sub.add_parser("train-expression", help="train the learned-v1 expression model (CPU)",
                        description="Stage 'synthetic': synthesise speech with exact phone timings (espeak-ng, "
                                    "15 languages), augment it and train learned-v1 from scratch (torch). Stage "
                                    "'video-head': fit the jaw head on real talking-head clips measured with the "
                                    "Capture module, with a leave-one-clip-out report (numpy, seconds). 'all' runs "
                                    "both; the defaults reproduce the shipped weights (docs/learned_engine.md).")
    tr.add_argument("--stage", choices=("all", "synthetic", "video-head"), default="all",
                    help="what to train (default all: synthetic, then the video head on --out)")
    tr.add_argument("--videos", default=str(_SHARED / "video"),
                    help="talking-head clips for the video head (default ../shared/data/video)")
    tr.add_argument("--face-model", default=str(_SHARED / "models" / "face_landmarker.task"),
                    help="MediaPipe FaceLandmarker bundle used to measure the clips")
    tr.add_argument("--capture-cache", default=str(Path.home() / ".cache" / "avatar-bridge" / "capture"),
                    help="cache of per-video face measurements ('' = none)")
    tr.add_argument("--video-lambda", type=float, default=1e4, help="ridge strength of the video head (default 1e4)")
    tr.add_argument("--out", default=str(DEFAULT_OUT), help=f"output directory (default: the package's, {DEFAULT_OUT})")
    tr.add_argument("--utterances", type=int, default=2500, help="synthetic utterances (default 2500)")
    tr.add_argument("--steps", type=int, default=2000, help="optimiser steps (default 2000)")
    tr.add_argument("--batch", type=int, default=16)
    tr.add_argument("--crop", type=int, default=200, help="training crop in 10 ms steps (default 200)")
    tr.add_argument("--data-cache", help="directory to cache the synthesised dataset in (reruns skip synthesis)")
    tr.add_argument("--lookahead-ms", type=float,
                    help="look-ahead to train for (22.5..222.5 ms on a 10 ms grid; default 72.5). Less is lower "
                         "latency and less accurate; serve the result with the server setting learned_weights")
    tr.add_argument("--seed", type=int, default=1234)
    tr.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    tr.set_defaults(run=_train)

    ev = sub.add_parser("eval-expression", help="measure engines on real talking-head clips and aligned speech",
                        description="Per clip Pearson r (best lag within +-100 ms) of each engine's jawOpen vs "
                                    "the speaker's own face (MediaPipe jawOpen and inner-lip aperture), and the "
                                    "open-vowel vs closure/fricative AUC on Praat-aligned speech. Baseline rows: "
                                    "rms-flap (amplitude lip-flap) and every registered engine.")
    ev.add_argument("dir", nargs="?", default=str(_SHARED / "video"),
                    help="directory of talking-head videos (default ../shared/data/video)")
    ev.add_argument("--align", default=str(_SHARED / "align"),
                    help="directory of wavs with Praat phone TextGrids (default ../shared/data/align); '' to skip")
    ev.add_argument("--engines", nargs="*", help="engine names (default: all registered)")
    ev.add_argument("--face-model", default=str(_SHARED / "models" / "face_landmarker.task"),
                    help="MediaPipe FaceLandmarker bundle")
    ev.add_argument("--cache", default=str(Path.home() / ".cache" / "avatar-bridge" / "capture"),
                    help="cache of per-video face measurements ('' = none)")
    ev.add_argument("--json", help="also write the rows as JSON here")
    ev.set_defaults(run=_eval)


def _train(args) -> int:
    if args.stage in ("all", "video-head"):
        missing = [f"{flag} {p}" for flag, p in (("--videos", args.videos), ("--face-model", args.face_model))
                   if not Path(p).exists()]
        if missing:
            print(f"avatar-bridge train-expression: {', '.join(missing)} not found (the video head needs "
                  "talking-head clips and the MediaPipe bundle; --stage synthetic skips it)", file=sys.stderr)
            return 2
    if args.stage == "video-head":
        return _train_video_head(args)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("avatar-bridge train-expression: needs PyTorch; install it with pip install 'avatar-bridge[train]' "
              "(CPU build: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)",
              file=sys.stderr)
        return 2
    from engine.expression.learned_model import ModelConfig, delay_for_lookahead
    from engine.expression.train.train import train

    cfg = ModelConfig()
    if args.lookahead_ms is not None:
        try:
            cfg.delay = delay_for_lookahead(args.lookahead_ms)
        except ValueError as exc:
            print(f"avatar-bridge train-expression: --lookahead-ms: {exc}", file=sys.stderr)
            return 2
    train(args.out, utterances=args.utterances, steps=args.steps, seed=args.seed, threads=args.threads,
          batch=args.batch, crop=args.crop, data_cache=args.data_cache, cfg=cfg)
    return _train_video_head(args) if args.stage == "all" else 0


def _train_video_head(args) -> int:
    from engine.expression.train.video_head import train_video_head

    if not (Path(args.out) / "model.npz").exists():
        print(f"avatar-bridge train-expression: --out {args.out} has no model.npz; the video head is fitted on a "
              "stage-1 model (run --stage synthetic first)", file=sys.stderr)
        return 2
    try:
        train_video_head(args.out, args.videos, args.face_model, args.capture_cache or None, lam=args.video_lambda)
    except ValueError as exc:
        print(f"avatar-bridge train-expression: {exc}", file=sys.stderr)
        return 2
    return 0


def _eval(args) -> int:
    from engine.expression.evaluate import run

    video = Path(args.dir) if args.dir else None
    if video and not video.is_dir():
        print(f"avatar-bridge eval-expression: {video} is not a directory of videos", file=sys.stderr)
        return 2
    model = Path(args.face_model)
    if video and not model.exists():
        print(f"avatar-bridge eval-expression: --face-model {model} not found (MediaPipe face_landmarker.task)",
              file=sys.stderr)
        return 2
    run(video, Path(args.align) if args.align else None, args.engines, model,
        Path(args.cache) if args.cache else None, Path(args.json) if args.json else None)
    return 0

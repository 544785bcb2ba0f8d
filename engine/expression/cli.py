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
    tr.add_argument("--stage", choices=("all", "network", "synthetic", "video-head"), default="all",
                    help="what to train (default all: the network, then the video head on --out; 'synthetic' is "
                         "the old name of 'network')")
    tr.add_argument("--real-speech", metavar="MANIFEST",
                    help="also train on the manifest's real speech (bench/data/media_sources.json, entries with "
                         "use 'train'), labelled by pocketsphinx: how learned-v2 is made (docs/learned_engine.md)")
    tr.add_argument("--media-root", help="folder the manifest's local paths are relative to (bench/gather_media.py)")
    tr.add_argument("--real-copies", type=int, default=4, help="augmented copies of each real clip (default 4)")
    tr.add_argument("--real-share", type=float, default=0.6,
                    help="share of training crops taken from real speech (default 0.6)")
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
    ev.add_argument("dir", nargs="*", default=[str(_SHARED / "video")],
                    help="directories of talking-head videos (default ../shared/data/video)")
    ev.add_argument("--align", nargs="*", default=[str(_SHARED / "align")],
                    help="directories of wavs with Praat phone TextGrids (default ../shared/data/align); none to skip")
    ev.add_argument("--manifest", nargs="*", default=[],
                    help="media manifests (bench/data/*.json): their kind 'av' clips are scored too, with their "
                         "language and speaker")
    ev.add_argument("--media-root", help="folder the manifests' local paths are relative to (bench/gather_media.py "
                                         "writes it)")
    ev.add_argument("--teacher", action="store_true",
                    help="add the pocketsphinx phone teacher, offline over each whole clip, as a reference row")
    ev.add_argument("--transcripts", action="store_true",
                    help="add the transcript mode of the default engine as a row, on clips whose transcript is known")
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
    from engine.expression.learned_runtime import ModelConfig, delay_for_lookahead
    from engine.expression.train.train import train

    cfg = ModelConfig()
    if args.lookahead_ms is not None:
        try:
            cfg.delay = delay_for_lookahead(args.lookahead_ms)
        except ValueError as exc:
            print(f"avatar-bridge train-expression: --lookahead-ms: {exc}", file=sys.stderr)
            return 2
    real, provenance = None, None
    if args.real_speech:
        if not Path(args.real_speech).is_file() or not args.media_root or not Path(args.media_root).is_dir():
            print("avatar-bridge train-expression: --real-speech needs a manifest file and --media-root, the folder "
                  "bench/gather_media.py wrote", file=sys.stderr)
            return 2
        if not 0.0 < args.real_share <= 1.0 or args.real_copies < 1:
            print("avatar-bridge train-expression: --real-share must be in (0, 1] and --real-copies >= 1",
                  file=sys.stderr)
            return 2
        from engine.expression.train.real import build_real, load_manifest, provenance_of

        try:
            clips = load_manifest(args.real_speech, args.media_root)
        except ValueError as exc:
            print(f"avatar-bridge train-expression: --real-speech: {exc}", file=sys.stderr)
            return 2
        if not clips:
            print(f"avatar-bridge train-expression: no training speech of {args.real_speech} exists under "
                  f"{args.media_root}; run bench/gather_media.py first", file=sys.stderr)
            return 2
        real = build_real(clips, cfg, copies=args.real_copies, seed=args.seed, cache=args.data_cache)
        provenance = provenance_of(clips, args.real_speech)
    train(args.out, utterances=args.utterances, steps=args.steps, seed=args.seed, threads=args.threads,
          batch=args.batch, crop=args.crop, data_cache=args.data_cache, cfg=cfg, real=real,
          real_share=args.real_share, provenance=provenance)
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
    from engine.expression.evaluate import clips_in_dir, clips_in_manifest, run

    clips = []
    for d in args.dir:
        if not Path(d).is_dir():
            print(f"avatar-bridge eval-expression: {d} is not a directory of videos", file=sys.stderr)
            return 2
        clips += clips_in_dir(Path(d))
    for m in args.manifest:
        if not Path(m).is_file():
            print(f"avatar-bridge eval-expression: --manifest {m} not found", file=sys.stderr)
            return 2
        try:
            clips += clips_in_manifest(Path(m), Path(args.media_root) if args.media_root else None)
        except ValueError as exc:
            print(f"avatar-bridge eval-expression: --manifest: {exc}", file=sys.stderr)
            return 2
    model = Path(args.face_model)
    if clips and not model.exists():
        print(f"avatar-bridge eval-expression: --face-model {model} not found (MediaPipe face_landmarker.task)",
              file=sys.stderr)
        return 2
    extra = {}
    if args.teacher:
        from engine.expression.train.teacher import PhoneTeacher, teacher_jaw

        teacher = PhoneTeacher()
        extra["ps-phones-offline"] = lambda x, clip, fps, n: teacher_jaw(x, fps, n, teacher)
    if args.transcripts:
        from engine.expression.evaluate import transcript_row

        extra.update(transcript_row(args.engines))
    run(clips, [Path(a) for a in args.align if a], args.engines, model,
        Path(args.cache) if args.cache else None, Path(args.json) if args.json else None, extra=extra)
    return 0

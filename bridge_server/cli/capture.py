"""`avatar-bridge capture` (video file -> frames) and `avatar-bridge models` (model files)."""
from __future__ import annotations

import contextlib
import pathlib
import sys


def add_parsers(sub) -> None:
    from bridge_server.client import add_connection_args

    cap = sub.add_parser("capture", help="measure a video file's face into frames.json / .csv (+ its audio)")
    cap.set_defaults(run=_capture)
    cap.add_argument("video", help="mp4/mov/mkv/webm file")
    cap.add_argument("--out", required=True, help="frames .json or .csv (docs/output_formats.md)")
    cap.add_argument("--audio-out", help="also write the video's audio track here (.wav)")
    cap.add_argument("--server", help="host:port of a running server; omitted = start an embedded one")
    add_connection_args(cap)  # --tls-ca, --token-file, --connect-timeout (docs/security.md)
    cap.add_argument("--model", help="face_landmarker.task for the embedded server (default: lookup, docs/capture.md)")
    cap.add_argument("--max-faces", type=int, default=1)
    cap.add_argument("--face-index", type=int, help="N-th face from the left (needs --max-faces > N)")
    cap.add_argument("--no-smoothing", action="store_true", help="turn the One Euro filter off")
    cap.add_argument("--mirrored", action="store_true", help="the video is mirrored (selfie camera)")
    cap.add_argument("--timeout", type=float, default=1800.0)

    mod = sub.add_parser("models", help="list, verify or fetch model files that are not in the pip wheels")
    mod.set_defaults(run=_models)
    mod.add_argument("action", choices=["list", "verify", "fetch"])
    mod.add_argument("names", nargs="*", help="model names (default: face_landmarker); the video checkpoints "
                                              "are s2v-14b (~49 GB) and liveavatar (1.4 GB); Piper TTS voices are "
                                              "piper:<voice>, e.g. piper:en_US-lessac-medium (docs/speak.md)")
    mod.add_argument("--dest", help="fetch into / look in this folder (default: $AVATAR_BRIDGE_MODELS_DIR or "
                                    "~/.cache/avatar-bridge/models; video checkpoints go to <dest>/<name>)")
    mod.add_argument("--url", help="fetch from this mirror URL instead (the checksum is still enforced)")


def _capture(args) -> int:
    from avatarbridge.v1 import bridge_pb2 as pb
    from bridge_server.cli import checks as cli_checks
    from bridge_server.client import (CLIENT_ERRORS, VideoCaptureResult, cli_client, embedded_server,
                                      report_client_error)

    settings = pb.CaptureSettings(max_faces=args.max_faces, mirrored=args.mirrored)
    if args.face_index is not None:
        settings.face_index = args.face_index
    if args.no_smoothing:
        settings.smoothing = False
    extra = ["--face-landmarker", args.model] if args.model else []
    res = VideoCaptureResult()  # filled as it arrives: an interrupt writes what is here
    try:
        data = pathlib.Path(args.video).read_bytes()
        ctx = contextlib.nullcontext(args.server) if args.server else embedded_server(
            extra_args=[*extra, "--max-message-bytes", str(8 << 20)])
        with ctx as target, cli_checks.sigterm_raises():
            cli_client(args, target).capture_video(data, settings, stream_id=args.video, timeout=args.timeout,
                                                   into=res)
    except (cli_checks.Interrupted, KeyboardInterrupt) as why:
        extra = [(args.audio_out, res.write_audio)] if args.audio_out and res.audio else []
        return cli_checks.write_partial("capture", res.animation, args.out, why, extra)
    except CLIENT_ERRORS as exc:
        return report_client_error("capture", exc)
    res.animation.write(args.out)
    if args.audio_out and res.audio:
        res.write_audio(args.audio_out)
    v, s = res.video, res.animation.status
    print(f"{s.frames_sent} frames ({v.width}x{v.height} {v.codec} at {v.fps:.2f} fps), face lost in "
          f"{s.face_lost_frames} -> {args.out}" + (f", audio -> {args.audio_out}" if args.audio_out and res.audio else "")
          + "".join(f"\nwarning: {w}" for w in s.warnings))
    return 0


def _models(args) -> int:
    from engine.capture import models as m

    from engine.video import checkpoints as ck

    names = args.names or list(m.MODELS)
    known = [*m.MODELS, *ck.MANIFEST, "piper:<voice>"]
    unknown = [n for n in names if n not in known and not n.startswith("piper:")]
    if unknown:
        print(f"avatar-bridge models: unknown model {', '.join(unknown)}; known: {', '.join(known)}",
              file=sys.stderr)
        return 2
    rc = 0
    for name in names:
        if name.startswith("piper:"):
            rc |= _piper_voice(args, name.split(":", 1)[1])
            continue
        if name in ck.MANIFEST:
            rc |= _video_checkpoint(args, name, ck)
            continue
        model = m.MODELS[name]
        if args.action == "fetch":
            try:
                path = m.fetch(model, pathlib.Path(args.dest) if args.dest else None, args.url)
            except (OSError, m.ModelMissing) as exc:
                print(f"{name}: FAILED: {_fetch_problem(exc, model, args)}", file=sys.stderr)
                rc = 1
                continue
            print(f"{name}: ok {path} (sha256 {model.sha256[:12]}…)")
            continue
        found = False
        for source, path in m.candidates(model):
            if not path.is_file():
                if args.action == "list":
                    print(f"{name}: absent  {path} ({source})")
                continue
            found = True
            problem = m.check(model, path) if args.action == "verify" else None
            state = "ok" if args.action == "verify" and problem is None else ("present" if problem is None else "BAD")
            print(f"{name}: {state:7s} {path} ({source})" + (f": {problem}" if problem else ""))
            rc |= 1 if problem else 0
        if not found:
            print(f"{name}: missing; run `avatar-bridge models fetch {name}` ({model.url})")
            rc = 1  # list and verify alike: scripts can test for a complete install
    return rc


def _fetch_problem(exc: BaseException, model, args) -> str:
    """A failed download, in words: no network gets how to place the file by hand."""
    import urllib.error

    from engine.capture.models import models_dir

    if not isinstance(exc, urllib.error.URLError) or isinstance(exc, urllib.error.HTTPError):
        return str(exc)
    dest = pathlib.Path(args.dest) if args.dest else models_dir()
    return (f"cannot download {args.url or model.url} ({exc.reason}): is this machine offline? On one with network, "
            f"download that URL and copy the file to {dest / model.filename} (or to the folder named by "
            f"AVATAR_BRIDGE_MODELS_DIR), then run `avatar-bridge models verify {model.name}`")


def _piper_voice(args, voice: str) -> int:
    """A Piper TTS voice: <voice>.onnx + .onnx.json from rhasspy/piper-voices into the piper voices folder."""
    from engine.tts import piper

    dest = pathlib.Path(args.dest) if args.dest else piper.voices_dir()
    if args.action == "fetch":
        try:
            files = piper.fetch_voice(voice, dest, args.url)
        except ValueError as exc:
            print(f"piper:{voice}: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"piper:{voice}: FAILED: {exc}; without network here, download {voice}.onnx and {voice}.onnx.json "
                  f"elsewhere and copy them into {dest}", file=sys.stderr)
            return 1
        print(f"piper:{voice}: ok {' '.join(str(f) for f in files)} (sha256 recorded in {dest / piper.CHECKSUMS})")
        return 0
    problems = piper.verify_voice(voice, dest)
    if problems and all(p.endswith("missing") for p in problems):
        print(f"piper:{voice}: absent  {dest}; run `avatar-bridge models fetch piper:{voice}`")
        return 1 if args.action == "verify" else 0
    state = "BAD" if problems else ("ok" if args.action == "verify" else "present")
    print(f"piper:{voice}: {state:7s} {dest}" + (f": {'; '.join(problems)}" if problems else ""))
    return 1 if problems and args.action == "verify" else 0


def _video_checkpoint(args, name: str, ck) -> int:
    """The DiT checkpoints: a folder per model, fetched from the Hugging Face hub (engine/video/checkpoints.py)."""
    from engine.capture.models import models_dir

    entry = ck.MANIFEST[name]
    dest = pathlib.Path(args.dest) / name if args.dest else models_dir() / name
    if args.action == "fetch":
        try:
            ck.fetch(name, str(dest))
        except (OSError, ck.CheckpointError) as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            return 1
        print(f"{name}: ok {dest} ({entry.repo_id})")
        return 0
    if not dest.is_dir():
        print(f"{name}: absent  {dest}; run `avatar-bridge models fetch {name}` (~{entry.disk_gb:g} GB, {entry.repo_id})")
        return 1
    missing = ck.missing_files(str(dest)) if name == "s2v-14b" else [f for f in entry.files if not (dest / f).exists()]
    bad = ck.verify(str(dest)) if args.action == "verify" else []
    state = "BAD" if missing or bad else ("ok" if args.action == "verify" else "present")
    detail = (f": missing {', '.join(missing)}" if missing else "") + (f": checksum differs {', '.join(bad)}" if bad else "")
    print(f"{name}: {state:7s} {dest}{detail}")
    return 1 if (missing or bad) and args.action == "verify" else 0

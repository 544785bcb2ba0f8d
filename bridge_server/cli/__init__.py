"""`avatar-bridge` command line. Every command is listed below; `avatar-bridge COMMAND --help` for its flags."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import fields

from bridge_server.cli import capture as cli_capture, checks as cli_checks
from bridge_server.cli.render import add_render_parser
from bridge_server.config import ServerConfig
from bridge_server.settings_help import SETTING_HELP
from engine.expression.cli import add_expression_commands  # train-expression, eval-expression
from engine.rig.emotions import EMOTION_NAMES
from engine.worker.specs import StyleSpec

EMOTIONS = list(EMOTION_NAMES)


def _add_serve(sub) -> None:
    ap = sub.add_parser("serve", help="run the gRPC server (defaults: 127.0.0.1:50051, metrics on :9464)",
                        description="Run the bridge server. Settings come from defaults < --config TOML < "
                                    "AVATAR_BRIDGE_<SETTING> environment variables < these flags.")
    ap.set_defaults(run=_serve)
    ap.add_argument("--config", help="TOML file with settings (top level or a [server] table)")
    for f in fields(ServerConfig):
        what = SETTING_HELP.get(f.name, "")
        if f.type in (bool, "bool"):  # a switch: --insecure (off unless given; env AVATAR_BRIDGE_INSECURE=1)
            ap.add_argument("--" + f.name.replace("_", "-"), dest=f.name, action="store_true", default=None,
                            help=f"{what} (default off; env {ServerConfig.env_name(f.name)}=1)".lstrip())
            continue
        typ = f.type if isinstance(f.type, type) else {"int": int, "float": float, "str": str}[f.type]
        if f.name == "outputs":  # repeatable: each flag adds targets (argparse's default keeps only the last)
            ap.add_argument("--outputs", dest="outputs", action="append", default=None,
                            help="mirror target URL(s), comma-separated; repeat the flag to add more "
                                 f"(default none; env {ServerConfig.env_name(f.name)})")
            continue
        ap.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=typ, default=None,
                        help=f"{what} (default {f.default!r}; env {ServerConfig.env_name(f.name)})".lstrip())


def _add_server_and_style(ap) -> None:
    """--server with its connection flags, then --fps and the style knobs animate and speak share; the style
    defaults are the seam's (engine/worker/specs.StyleSpec), the ones a request that leaves them unset gets."""
    from bridge_server.client import add_connection_args

    ap.add_argument("--server", help="host:port of a running server; omitted = start an embedded one")
    add_connection_args(ap)  # --tls-ca, --token-file, --connect-timeout (docs/security.md)
    ap.add_argument("--fps", type=int, default=30, choices=[30, 60])
    d = StyleSpec()
    ap.add_argument("--emotion", default=d.emotion, choices=EMOTIONS)
    ap.add_argument("--emotion-strength", type=float, default=d.emotion_strength, help="0..1")
    ap.add_argument("--intensity", type=float, default=d.intensity, help="mouth articulation 0..2")
    ap.add_argument("--head-motion", type=float, default=d.head_motion, help="head and eye motion 0..2")
    ap.add_argument("--seed", type=int, default=d.seed, help="blinks and idle motion; 0 = from the stream id")


def _add_client(sub) -> None:
    from bridge_server.client import add_connection_args

    ap = sub.add_parser("animate", help="animate an audio file into frames.json / frames.csv")
    ap.set_defaults(run=_client)
    ap.add_argument("audio", help="wav/flac/ogg/mp3 file")
    ap.add_argument("--out", required=True, help="output path; .json or .csv (layout: docs/output_formats.md)")
    _add_server_and_style(ap)
    ap.add_argument("--engine", default="", help="expression engine (default: the server's; see capabilities)")
    ap.add_argument("--stream", action="store_true",
                    help="send the audio as a StreamExpression of PCM16 chunks instead of AnimateClip; the chunks "
                         "go as fast as the server takes them unless --realtime")
    ap.add_argument("--realtime", action="store_true",
                    help="with --stream: pace the chunks at real time, as a live microphone would")
    ap.add_argument("--transcript", metavar="FILE",
                    help="UTF-8 text file of what is said: the mouth follows its aligned phones (English; "
                         "docs/transcript.md)")
    ap.add_argument("--language", default="", help="BCP-47 language of --transcript (default en)")
    ap.add_argument("--timeout", type=float, default=600.0, help="deadline in seconds")

    sp = sub.add_parser("speak", help="text -> speech (wav) + frames (json/csv) with the Speak RPC (docs/speak.md)")
    sp.set_defaults(run=_speak)
    sp.add_argument("text", nargs="?", help="what to say (plain text or SSML); or use --text-file")
    sp.add_argument("--text-file", help="UTF-8 text file to say instead of TEXT")
    sp.add_argument("--voice", default="", help="voice id, e.g. espeak:de or festival:us-slt-hts (default: the "
                                                "language's; `avatar-bridge speak --list-voices`)")
    sp.add_argument("--language", default="", help="BCP-47 language, e.g. en, zh-CN, ja, de, fr, es (default en)")
    sp.add_argument("--rate", type=float, default=1.0, help="speaking rate 0.5..2 (1 = normal)")
    sp.add_argument("--list-voices", action="store_true", help="print the server's voices as JSON and exit")
    sp.add_argument("--out", help="frames output path; .json or .csv")
    sp.add_argument("--audio-out", help="speech output path (.wav, PCM16 mono at the voice's rate)")
    _add_server_and_style(sp)
    sp.add_argument("--timeout", type=float, default=600.0, help="deadline in seconds")

    cap = sub.add_parser("capabilities", help="print the server's capabilities as JSON")
    cap.set_defaults(run=_client)
    cap.add_argument("--server", help="host:port of a running server; omitted = start an embedded one")
    add_connection_args(cap)  # --tls-ca, --token-file, --connect-timeout (docs/security.md)


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv)[:1] != ["serve"]:
        # gRPC core would print each failed TLS handshake attempt of a client on stderr; the CLI prints one line
        # that says why instead. Read when grpc is first imported, so set before the parsers import the client.
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except ModuleNotFoundError as exc:  # an optional extra that is not installed (render, video)
        msg = cli_checks.missing_package_message(args.cmd, exc)
        if msg is None:
            raise
        print(msg, file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The one registry of commands: each module adds its parsers, and each parser names its run function
    (set_defaults(run=...)), so dispatch is one call."""
    parser = argparse.ArgumentParser(prog="avatar-bridge", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    _add_serve(sub)
    _add_client(sub)
    cli_capture.add_parsers(sub)
    add_render_parser(sub)
    add_expression_commands(sub)
    from bridge_server.cli.video import add_video_commands
    add_video_commands(sub)
    from bridge_server.console.main import add_parser as add_console_parser  # web console (docs/console.md)
    add_console_parser(sub)
    return parser


def _run(args) -> int:
    problem = cli_checks.frames_out_problem(getattr(args, "out", None)) if args.cmd in (
        "animate", "speak", "capture") else ""
    if problem:
        print(f"avatar-bridge {args.cmd}: {problem}", file=sys.stderr)
        return 2
    return args.run(args)


def _serve(args) -> int:
    from bridge_server.server import serve
    from engine.logjson import setup_logging

    overrides = {f.name: getattr(args, f.name) for f in fields(ServerConfig)}
    if overrides["outputs"] is not None:  # --outputs A --outputs B = "A,B"
        overrides["outputs"] = ",".join(overrides["outputs"])
    try:
        cfg = ServerConfig.load(args.config, overrides)
    except (ValueError, OSError) as exc:
        print(f"avatar-bridge serve: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg.log_level, cfg.log_format)
    if cfg.fronts > 1:  # a supervisor of N `serve` processes on one port (bridge_server/fronts.py)
        from bridge_server.fronts import run_fronts
        return run_fronts(cfg)
    try:
        return asyncio.run(serve(cfg))
    except RuntimeError as exc:
        print(f"avatar-bridge serve: {exc}", file=sys.stderr)
        return 1


def _client(args) -> int:
    import contextlib

    from google.protobuf import json_format

    from avatarbridge.v1 import bridge_pb2 as pb
    from bridge_server.client import CLIENT_ERRORS, Animation, cli_client, embedded_server, report_client_error

    transcript = ""
    if args.cmd == "animate" and args.realtime and not args.stream:
        print("avatar-bridge animate: --realtime paces a stream; add --stream", file=sys.stderr)
        return 2
    if args.cmd == "animate" and args.transcript is not None:
        transcript, problem = _read_transcript(args.transcript, args.stream)
        if problem:
            print(f"avatar-bridge animate: {problem}", file=sys.stderr)
            return 2
    ctx = contextlib.nullcontext(args.server) if args.server else embedded_server()
    try:
        with ctx as target:
            client = cli_client(args, target)
            if args.cmd == "capabilities":
                print(json_format.MessageToJson(client.capabilities(), always_print_fields_with_no_presence=True))
                return 0
            with open(args.audio, "rb") as fh:
                data = fh.read()
            style = pb.ExpressionStyle(emotion=pb.Emotion.Value("EMOTION_" + args.emotion.upper()),
                                       emotion_strength=args.emotion_strength, intensity=args.intensity,
                                       head_motion=args.head_motion, seed=args.seed)
            anim = Animation()  # filled as frames arrive: an interrupt writes what is here
            began = time.monotonic()
            try:
                with cli_checks.sigterm_raises():
                    if args.stream:
                        _stream_file(client, data, args, style, anim)
                    else:
                        client.animate_clip(data, fps=args.fps, stream_id=args.audio, style=style,
                                            timeout=args.timeout, engine=args.engine, transcript=transcript,
                                            language=args.language, into=anim)
            except (cli_checks.Interrupted, KeyboardInterrupt) as why:
                return cli_checks.write_partial(args.cmd, anim, args.out, why)
            anim.write(args.out)
            s = anim.status
            how = (f" streamed in {time.monotonic() - began:.2f} s"
                   + (" (paced at real time)" if args.realtime else " (not paced)")) if args.stream else ""
            print(f"{len(anim.frames)} frames at {anim.header.fps} fps for {s.audio_seconds:.2f} s of audio"
                  f"{how} -> {args.out}" + "".join(f"\nwarning: {w}" for w in s.warnings))
            return 0
    except CLIENT_ERRORS as exc:
        return report_client_error(args.cmd, exc)


def _speak(args) -> int:
    """avatar-bridge speak: one Speak call; the text's problems are refused here (exit 2) before any call."""
    import contextlib
    import json

    from avatarbridge.v1 import bridge_pb2 as pb
    from bridge_server.client import CLIENT_ERRORS, SpeechResult, cli_client, embedded_server, report_client_error

    text = args.text
    if not args.list_voices:
        if (text is None) == (args.text_file is None):
            print("avatar-bridge speak: give the text to say, either as TEXT or with --text-file (not both)",
                  file=sys.stderr)
            return 2
        if args.text_file is not None:
            text, problem = _read_utf8(args.text_file, "--text-file")
            if problem:
                print(f"avatar-bridge speak: {problem}", file=sys.stderr)
                return 2
        if not (args.out or args.audio_out):
            print("avatar-bridge speak: give --out (frames) and/or --audio-out (speech wav)", file=sys.stderr)
            return 2
    ctx = contextlib.nullcontext(args.server) if args.server else embedded_server()
    try:
        with ctx as target:
            client = cli_client(args, target)
            if args.list_voices:
                from google.protobuf import json_format
                caps = client.capabilities()
                print(json.dumps([json_format.MessageToDict(v, always_print_fields_with_no_presence=True)
                                  for v in caps.voices], indent=1, ensure_ascii=False))
                return 0
            style = pb.ExpressionStyle(emotion=pb.Emotion.Value("EMOTION_" + args.emotion.upper()),
                                       emotion_strength=args.emotion_strength, intensity=args.intensity,
                                       head_motion=args.head_motion, seed=args.seed)
            res = SpeechResult()  # filled as it arrives: an interrupt writes what is here
            try:
                with cli_checks.sigterm_raises():
                    client.speak(text, voice=args.voice, language=args.language, fps=args.fps,
                                 speaking_rate=args.rate, style=style, stream_id=args.text_file or "speak",
                                 timeout=args.timeout, into=res)
            except (cli_checks.Interrupted, KeyboardInterrupt) as why:
                extra = [(args.audio_out, res.write_audio)] if args.audio_out and res.audio and res.header else []
                return cli_checks.write_partial("speak", res.animation, args.out, why, extra)
            if args.audio_out:
                res.write_audio(args.audio_out)
            if args.out:
                res.animation.write(args.out)
            s = res.status
            outs = " and ".join(x for x in (args.audio_out, args.out) if x)
            print(f"{res.header.voice}: {s.sentences} sentences, {s.audio_seconds:.2f} s of speech at "
                  f"{res.header.sample_rate} Hz, {len(res.animation.frames)} frames at {args.fps} fps -> {outs}"
                  + "".join(f"\nwarning: {w}" for w in s.warnings))
            return 0
    except CLIENT_ERRORS as exc:
        return report_client_error("speak", exc)


def _read_utf8(path: str, flag: str) -> tuple[str, str]:
    """A text file -> (text, problem); problem is '' when it is UTF-8 (a BOM is accepted)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        return "", f"cannot read {flag} {path}: {exc.strerror or exc}"
    try:
        return raw.decode("utf-8-sig"), ""
    except UnicodeDecodeError as exc:
        return "", (f"{flag} {path} is not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r}); "
                    "save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)")


def _read_transcript(path: str, stream: bool) -> tuple[str, str]:
    """--transcript FILE -> (text, problem); problem is '' when the text can be sent."""
    if stream:
        return "", "--transcript works with AnimateClip only; drop --stream"
    return _read_utf8(path, "--transcript")


def _stream_file(client, data: bytes, args, style, anim):
    import numpy as np

    from bridge_server.client import Animation, stream_requests
    from engine.audio import AudioError, decode_file

    try:
        x, sr, _ = decode_file(data)  # decoded here: the stream carries PCM
    except AudioError as exc:
        raise RuntimeError(f"{args.audio}: {exc}") from None
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    reqs = stream_requests(pcm, sr, fps=args.fps, stream_id=args.audio, realtime=args.realtime)
    first = next(reqs)
    first.header.style.CopyFrom(style)
    first.header.engine = args.engine

    def announced(responses):
        said = False
        for r in responses:
            yield r
            # Said once the first frames are kept (the consumer asked for the next response, so it has taken
            # this one): a SIGTERM right after the line then always finds frames to write.
            if not said and r.WhichOneof("msg") == "frames":
                print(f"receiving frames from {args.audio}"
                      + (" at real time" if args.realtime else "") + " (SIGTERM or Ctrl-C writes what has arrived)",
                      file=sys.stderr, flush=True)
                said = True

    import itertools
    return Animation.collect(announced(client.stream(itertools.chain([first], reqs), timeout=args.timeout)), anim)


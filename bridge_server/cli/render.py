"""`avatar-bridge render`: frames.json / frames.csv + a rigged glTF avatar -> preview MP4 (with the speech) / PNGs.

Runs locally (no server): the renderer is a preview tool for any frame stream (docs/render.md)."""
from __future__ import annotations

import re
import sys


def add_render_parser(sub) -> None:
    ap = sub.add_parser("render", help="render frames.json/.csv on a rigged glTF avatar to MP4 / PNGs",
                        description="Render a frame stream (docs/output_formats.md) on a rigged glTF avatar "
                                    "(ARKit-named morph targets; Head/Neck/LeftEye/RightEye bones) from the front, "
                                    "offscreen on the CPU. Output frame k shows time k/fps. Details: docs/render.md")
    ap.set_defaults(run=run_render)
    ap.add_argument("frames", help="frames.json or frames.csv written by `avatar-bridge animate`")
    ap.add_argument("--avatar", required=True, help="rigged avatar, .glb or .gltf (e.g. Ready Player Me, VRoid)")
    ap.add_argument("--out", help="output video, .mp4 (H.264 yuv420p; AAC audio with --audio)")
    ap.add_argument("--audio", help="speech to mux into the MP4 (any format ffmpeg reads); "
                                    "the frames' time codes are on its clock")
    ap.add_argument("--size", default="512", help="image size: N (square) or WxH, even numbers (default 512)")
    ap.add_argument("--png-dir", help="also (or only) write frame_000000.png, ... into this directory")
    ap.add_argument("--fps", type=float, help="output frame rate (default: the file's fps; CSV: from the time codes)")
    ap.add_argument("--eyes", default="bones", choices=["bones", "blendshapes", "both"],
                    help="eye gaze from the eye bones (default; eyeLook* weights then skip eyeball meshes) or from "
                         "the eyeLook* shapes; frames carry both")
    ap.add_argument("--bone", action="append", default=[], metavar="BONE=NODE",
                    help="map a bone to a node name when the lookup fails, e.g. --bone Head=mixamorig:Head "
                         "(BONE: Head, Neck, LeftEye, RightEye; repeatable)")


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)(?:[xX](\d+))?", text.strip())
    if not m:
        raise ValueError(f"--size must be N or WxH, got {text!r}")
    w = int(m.group(1))
    h = int(m.group(2) or w)
    if not (16 <= w <= 4096 and 16 <= h <= 4096) or w % 2 or h % 2:
        raise ValueError(f"--size must be even numbers from 16 to 4096, got {w}x{h}")
    return w, h


def run_render(args) -> int:
    from engine.render import AvatarError
    from engine.render.avatar import Avatar
    from engine.render.frames import FramesError, load_frames
    from engine.render.preview import render_preview
    from engine.rig import BONE_NAMES

    def fail(msg: str, code: int = 2) -> int:
        print(f"avatar-bridge render: {msg}", file=sys.stderr)
        return code

    if not args.out and not args.png_dir:
        return fail("give --out preview.mp4 and/or --png-dir DIR")
    if args.out and not args.out.lower().endswith(".mp4"):
        return fail(f"--out must be an .mp4 file, got {args.out!r}")
    if args.audio and not args.out:
        return fail("--audio needs --out (PNG sequences carry no sound)")
    if args.fps is not None and not 1 <= args.fps <= 240:
        return fail(f"--fps must be 1..240, got {args.fps}")
    try:
        width, height = _size(args.size)
        bone_map = {}
        for item in args.bone:
            bone, _, node = item.partition("=")
            if bone not in BONE_NAMES or not node:
                raise ValueError(f"--bone must be BONE=NODE with BONE one of {', '.join(BONE_NAMES)}, got {item!r}")
            bone_map[bone] = node
        track = load_frames(args.frames)
        avatar = Avatar.load(args.avatar, bone_map=bone_map)
    except (FramesError, AvatarError, ValueError) as exc:
        return fail(str(exc))
    print(avatar.describe(), file=sys.stderr)
    try:
        res = render_preview(track, avatar, out=args.out, png_dir=args.png_dir, audio=args.audio,
                             width=width, height=height, fps=args.fps, eyes=args.eyes)
    except ValueError as exc:
        return fail(str(exc))
    except (OSError, RuntimeError) as exc:
        return fail(str(exc), 1)
    dest = " and ".join(x for x in (args.out, args.png_dir and f"{args.png_dir}/") if x)
    print(f"{res.video_frames} frames ({res.rendered} rendered) at {res.fps:g} fps, {res.duration_s:.2f} s, "
          f"{width}x{height}{' with audio' if args.audio else ''} -> {dest}")
    return 0

"""Preview renderer speed: seconds per frame for posing (numpy morphs + skinning), rendering (pose + GL draw on
Mesa llvmpipe + readback) and MP4 encoding, per avatar and image size.

Poses vary every frame (seeded random ARKit weights and head/neck/eye rotations up to 20 degrees), so every
dynamic vertex buffer is re-uploaded each frame, as in a real preview.

    python bench/render_bench.py --avatars ../shared/data/avatars/brunette-t.glb ../shared/data/avatars/vroid.glb \
        --sizes 256 512 --frames 60
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from engine.render import Avatar, FaceRenderer, axis_angle_quat  # noqa: E402
from engine.render.writers import Mp4Writer  # noqa: E402


def poses(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        w = rng.uniform(0, 1, 52) * (rng.uniform(0, 1, 52) < 0.3)
        q = np.concatenate([axis_angle_quat(rng.normal(size=3), rng.uniform(-20, 20)) for _ in range(4)])
        yield w, q


def timed(fn, items):
    wall, cpu = [], []
    for it in items:
        t0, c0 = time.perf_counter(), time.process_time()
        fn(*it)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return np.array(wall), np.array(cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--avatars", nargs="+", default=[os.path.join(ROOT, "..", "shared", "data", "avatars", n)
                                                     for n in ("brunette-t.glb", "vroid.glb")])
    ap.add_argument("--sizes", nargs="+", type=int, default=[512])
    ap.add_argument("--samples", type=int, default=4, help="MSAA samples (the renderer's default is 4)")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS', 'default')}, "
          f"load average at start {os.getloadavg()[0]:.1f}")
    rows = []
    for path in args.avatars:
        t0 = time.perf_counter()
        avatar = Avatar.load(path)
        load_s = time.perf_counter() - t0
        for size in args.sizes:
            t0 = time.perf_counter()
            r = FaceRenderer(avatar, size, size, samples=args.samples)
            init_s = time.perf_counter() - t0
            with r.ctx:
                gl = r.ctx.info["GL_RENDERER"]
            items = list(poses(args.frames + 5))
            for w, q in items[:5]:  # warm-up: shader compile, first uploads
                r.render(w, q)
            pose_wall, pose_cpu = timed(lambda w, q: avatar.pose(w, q), items[5:])
            rend_wall, rend_cpu = timed(lambda w, q: r.render(w, q), items[5:])
            imgs = [r.render(w, q) for w, q in items[5:]]
            with tempfile.TemporaryDirectory() as tmp:
                writer = Mp4Writer(os.path.join(tmp, "b.mp4"), size, size, 30)
                enc_wall, enc_cpu = timed(lambda im: writer.write(im), [(im,) for im in imgs])
                writer.close()
            r.close()
            row = {"avatar": os.path.basename(path), "size": size, "samples": args.samples, "renderer": gl,
                   "load_s": round(load_s, 2), "init_s": round(init_s, 2),
                   "pose_ms_p50": round(1e3 * np.median(pose_wall), 1),
                   "render_ms_p50": round(1e3 * np.median(rend_wall), 1),
                   "render_ms_p90": round(1e3 * np.quantile(rend_wall, 0.9), 1),
                   "render_cpu_ms_p50": round(1e3 * np.median(rend_cpu), 1),
                   "mp4_encode_ms_p50": round(1e3 * np.median(enc_wall), 1)}
            rows.append(row)
            print(json.dumps(row))
    print(f"# load average at end {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    print("\n| avatar | size | MSAA | load s | renderer init s | pose ms p50 | render ms p50 / p90 (CPU ms) | "
          "frames/s | MP4 encode ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r_ in rows:
        print(f"| {r_['avatar']} | {r_['size']} | {r_['samples']} | {r_['load_s']} | {r_['init_s']} | "
              f"{r_['pose_ms_p50']} | {r_['render_ms_p50']} / {r_['render_ms_p90']} ({r_['render_cpu_ms_p50']}) | "
              f"{1e3 / r_['render_ms_p50']:.1f} | {r_['mp4_encode_ms_p50']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

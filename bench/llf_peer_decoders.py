"""Decode our Live Link Face packets with public decoders that nobody here wrote (not vendored: point
--peers at a folder holding their files, fetched by you; see tests/fixtures/livelinkface/README.md).

  python bench/llf_peer_decoders.py --peers /work/peers/llf

Reads <peers>/pylivelinkface.py (JimWest/PyLiveLinkFace, pylivelinkface/pylivelinkface.py) and
<peers>/gesicht.py (think-biq/LLV, src/llv/gesicht.py); makes 120 packets with the real output class to a
loopback socket; prints, per decoder, how many parse and the largest difference from what we sent.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import pathlib
import sys

import numpy as np

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parents[1]), str(pathlib.Path(__file__).resolve().parents[1] / "tests")]


def load(path: pathlib.Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", required=True)
    args = ap.parse_args()
    from test_livelink_face import Receiver, decode
    from bridge_server.outputs import OutputTarget, StreamInfo
    from bridge_server.outputs.livelink_face import LiveLinkFaceOutput
    from engine.rig import ARKIT_NAMES, BONE_NAMES
    from engine.worker.protocol import FrameBlock

    rx = Receiver()
    rng = np.random.default_rng(0)
    n = 120
    w = rng.random((n, 52), dtype=np.float32)
    t = np.linspace(0, 2 * math.pi, n)
    rot = np.tile([0, 0, 0, 1.0], (n, 4)).astype(np.float32)
    rot[:, 0:4] = np.stack([0 * t, np.sin(0.2 * np.sin(t)), 0 * t, np.cos(0.2 * np.sin(t))], 1)

    async def run():
        out = LiveLinkFaceOutput(OutputTarget("livelinkface", "127.0.0.1", rx.port, {"pace": "0"}),
                                 StreamInfo("bench", 60, list(ARKIT_NAMES), list(BONE_NAMES)))
        out.send(FrameBlock(0, np.arange(n, dtype=np.uint64) * 800, w, rot, None, n / 60, 48000, True, []), 48000)
        out.close()
        await asyncio.sleep(0.05)

    asyncio.run(run())
    packets = [p for _, p in rx.wait_for(n, timeout=5)]
    ours = [decode(p)["curves"] for p in packets]
    peers = pathlib.Path(args.peers)
    results = {}
    if (peers / "pylivelinkface.py").exists():
        if importlib.util.find_spec("timecode") is None:  # its encoder needs the timecode package; decode() does not
            import types
            stub = types.ModuleType("timecode")
            stub.Timecode = type("Timecode", (), {"__init__": lambda self, *a, **k: setattr(self, "frames", 0)})
            sys.modules["timecode"] = stub
        mod = load(peers / "pylivelinkface.py", "peer_pylivelinkface")
        ok, err = 0, 0.0
        for p, c in zip(packets, ours):
            try:
                good, face = mod.PyLiveLinkFace.decode(p)
            except Exception:  # a peer's failure is what we measure
                continue
            if good:
                ok += 1
                err = max(err, float(np.max(np.abs(np.array(face._blend_shapes, np.float32) - c))))
        results["JimWest/PyLiveLinkFace decode()"] = (ok, err)
    if (peers / "gesicht.py").exists():
        mod = load(peers / "gesicht.py", "peer_llv")
        ok, err = 0, 0.0
        for p, c in zip(packets, ours):
            try:
                f = mod.FaceFrame.from_raw(p, len(p))
            except Exception:
                continue
            ok += 1
            err = max(err, float(np.max(np.abs(np.array(list(f.blendshapes.values()), np.float32) - c))))
        results["think-biq/LLV FaceFrame.from_raw"] = (ok, err)
    for name, (ok, err) in results.items():
        print(f"{name}: {ok}/{len(packets)} packets parsed, max |value - sent| = {err:.2e}")
    return 0 if results and all(ok == len(packets) for ok, _ in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

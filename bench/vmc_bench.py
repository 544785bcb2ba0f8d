"""Cost of the VMC output (bridge_server/outputs/vmc.py) on the server's event loop.

Encodes and sends N frames of the 52 weights + 4 bones to a UDP socket on loopback (a real sendto per
datagram, nothing paced) and reports CPU time per frame, datagrams and bytes per frame, and what that is
as a share of one core per 60 fps stream.

    python bench/vmc_bench.py --frames 6000
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bridge_server.outputs import OutputTarget, StreamInfo  # noqa: E402
from bridge_server.outputs.vmc import VmcOutput  # noqa: E402
from engine.rig import ARKIT_NAMES, BONE_NAMES  # noqa: E402


async def run(frames: int) -> dict:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sink.setblocking(False)
    out = VmcOutput(OutputTarget("vmc", "127.0.0.1", sink.getsockname()[1], {}),
                    StreamInfo("bench", 60, list(ARKIT_NAMES), list(BONE_NAMES)))
    rng = np.random.default_rng(0)
    w = rng.random((frames, 52), dtype=np.float32)
    q = rng.normal(size=(frames, 4, 4)).astype(np.float32)
    q /= np.linalg.norm(q, axis=2, keepdims=True)
    q = q.reshape(frames, 16)
    datagrams = nbytes = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(frames):
        out._send_frame(i / 60, w[i], q[i], None)
        while True:  # drain so the receive buffer never drops
            try:
                nbytes += len(sink.recv(65536))
                datagrams += 1
            except BlockingIOError:
                break
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    out.closing = True
    sink.close()
    return {"frames": frames, "cpu_us_per_frame": 1e6 * cpu / frames, "wall_us_per_frame": 1e6 * wall / frames,
            "datagrams_per_frame": datagrams / frames, "bytes_per_frame": nbytes / frames,
            "core_share_at_60fps": cpu / frames * 60, "send_errors": out.errors}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=6000)
    r = asyncio.run(run(ap.parse_args().frames))
    print(f"{platform.processor() or platform.machine()}, python {platform.python_version()}")
    for k, v in r.items():
        print(f"{k:>22}: {v:.4g}" if isinstance(v, float) else f"{k:>22}: {v}")


if __name__ == "__main__":
    main()

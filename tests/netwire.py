"""A userspace Ethernet wire between two network namespaces, with delay, random loss and a cut.

Run by tests/netns.py as root: ``python tests/netwire.py NS_A TAP_A NS_B TAP_B SEED``. It creates one TAP
device in each namespace and copies every frame from one to the other, after ``delay_ms`` and unless the
seeded coin says drop (``loss``) or the wire is cut. Frames keep their order (one fixed delay per direction).

Why not veth + ``tc qdisc netem``: netem is a kernel module (CONFIG_NET_SCH_NETEM) that many container and CI
kernels, this project's dev VM included, do not have; TAP devices (CONFIG_TUN) are everywhere. The packets are
real IP/TCP packets of the kernels' own stacks: TCP retransmits what the wire drops, exactly as over netem.

Control: one command per line on stdin, each answered "ok" on stdout once in force:
``set loss=0.05 delay_ms=40`` | ``cut`` | ``heal`` | ``quit``.
"""
from __future__ import annotations

import ctypes
import fcntl
import heapq
import os
import random
import select
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000


def open_tap(netns: str, name: str) -> int:
    """A TAP device called NAME inside the named namespace (it vanishes when this process exits)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{netns}") as ns:
        if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns}")
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def main() -> None:
    ns_a, tap_a, ns_b, tap_b, seed = sys.argv[1:6]
    fa = open_tap(ns_a, tap_a)
    fb = open_tap(ns_b, tap_b)
    peer = {fa: fb, fb: fa}
    rng = random.Random(int(seed))
    loss, delay, cut = 0.0, 0.0, False
    queue: list[tuple[float, int, int, bytes]] = []  # (due, order, destination fd, frame)
    order = 0
    stdin = sys.stdin.fileno()
    print("ok", flush=True)
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        readable, _, _ = select.select([fa, fb, stdin], [], [], timeout)
        for fd in readable:
            if fd == stdin:
                line = sys.stdin.readline().split()
                if not line or line[0] == "quit":
                    return
                if line[0] == "cut":
                    cut = True
                    queue.clear()  # what is on the wire when it is cut never arrives
                elif line[0] == "heal":
                    cut = False
                elif line[0] == "set":
                    opts = dict(kv.split("=") for kv in line[1:])
                    loss = float(opts.get("loss", loss))
                    delay = float(opts.get("delay_ms", delay * 1000)) / 1000
                print("ok", flush=True)
                continue
            while True:  # drain the device: many frames may be waiting
                try:
                    frame = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if cut or (loss and rng.random() < loss):
                    continue
                order += 1
                heapq.heappush(queue, (time.monotonic() + delay, order, peer[fd], frame))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, dst, frame = heapq.heappop(queue)
            try:
                os.write(dst, frame)
            except OSError:  # the device is not up yet or its queue is full: the frame is lost, as on a wire
                pass


if __name__ == "__main__":
    main()

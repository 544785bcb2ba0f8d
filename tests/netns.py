"""Two network namespaces joined by a controllable wire, for tests of faults across a network.

``NetPair`` creates uniquely named namespaces ``ab<pid>_<n>s`` (server, 10.77.<n>.1) and ``ab<pid>_<n>c``
(client, 10.77.<n>.2), joined by tests/netwire.py (delay, loss, cut), and removes them on exit even when the
test fails. Traffic never leaves these namespaces. ``NetPair.unavailable()`` says why the machine cannot do this
(not root, no ``ip``, no TUN device) so a test can skip naming the reason.
"""
from __future__ import annotations

import itertools
import os
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
_count = itertools.count(1)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


class NetPair:
    def __init__(self, seed: int = 1):
        n = next(_count) % 250 + 1
        tag = f"ab{os.getpid()}_{n}"
        self.server_ns, self.client_ns = tag + "s", tag + "c"
        self.server_ip, self.client_ip = f"10.77.{n}.1", f"10.77.{n}.2"
        self.seed = seed
        self.wire: subprocess.Popen | None = None

    @staticmethod
    def unavailable() -> str:
        """'' when namespaces and TAP devices can be made here, else the reason."""
        if os.geteuid() != 0:
            return "network namespaces need root (ip netns add)"
        if shutil.which("ip") is None:
            return "the ip command is missing (Debian package iproute2)"
        if not os.path.exists("/dev/net/tun"):
            return "/dev/net/tun is missing (kernel without CONFIG_TUN)"
        probe = f"abprobe{os.getpid()}"
        try:
            _ip("netns", "add", probe)
        except subprocess.CalledProcessError as exc:
            return f"ip netns add failed: {exc.stderr.strip()}"
        _ip("netns", "del", probe)
        return ""

    def __enter__(self) -> "NetPair":
        try:
            for ns in (self.server_ns, self.client_ns):
                _ip("netns", "add", ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            self.wire = subprocess.Popen(
                [sys.executable, str(HERE / "netwire.py"), self.server_ns, "wire0", self.client_ns, "wire0",
                 str(self.seed)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self._ack()
            for ns, addr in ((self.server_ns, self.server_ip), (self.client_ns, self.client_ip)):
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "wire0")
                _ip("-n", ns, "link", "set", "wire0", "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.wire is not None and self.wire.poll() is None:
            self.wire.kill()
            self.wire.wait(10)
        for ns in (self.server_ns, self.client_ns):
            # Deleting a namespace kills nothing in it: callers end their own processes first.
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)

    def _ack(self) -> None:
        line = self.wire.stdout.readline().strip()
        if line != "ok":
            raise RuntimeError(f"the wire process failed (answered {line!r}, exit {self.wire.poll()})")

    def control(self, command: str) -> None:
        """Send a wire command (set loss=.. delay_ms=.. | cut | heal) and wait until it is in force."""
        self.wire.stdin.write(command + "\n")
        self.wire.stdin.flush()
        self._ack()

    def exec_args(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

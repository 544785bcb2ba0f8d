"""Hosts in separate Linux network namespaces, for the load-balancer tests (needs root and iproute2).

    net = LbNetwork("lbt")           # a switch namespace holding a bridge
    net.add_host("s1", "10.77.0.11")  # namespace lbt-s1, eth0 10.77.0.11/24 on the bridge, lo up
    proc = net.popen("s1", [...])     # a process inside it
    net.close()                       # kills what it started, deletes the namespaces (and their links)

Every namespace name carries the creating process id, so parallel runs and other helpers' namespaces never
collide, and close() removes only its own.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess

SUBNET_PREFIX = 24


def netns_available() -> str:
    """'' when network namespaces can be made here, else why not (for a skip message)."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN)"
    probe = f"lbprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode:
        return f"`ip netns add` failed: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ""


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


class LbNetwork:
    def __init__(self, tag: str):
        self.prefix = f"{tag}{os.getpid() % 100000}"
        self.switch = f"{self.prefix}-sw"
        self.hosts: dict[str, str] = {}  # name -> address
        self.procs: list[subprocess.Popen] = []
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def add_host(self, host: str, address: str) -> None:
        ns = self.ns(host)
        _ip("netns", "add", ns)
        _ip("link", "add", "name", "eth0", "netns", ns, "type", "veth", "peer", "name", f"p-{host}",
            "netns", self.switch)
        _ip("-n", self.switch, "link", "set", f"p-{host}", "master", "br0", "up")
        _ip("-n", ns, "addr", "add", f"{address}/{SUBNET_PREFIX}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")  # the server's workers talk to it over ZeroMQ on loopback
        self.hosts[host] = address

    def popen(self, host: str, argv: list[str], **kw) -> subprocess.Popen:
        """Start argv inside the host's namespace (`ip netns exec` execs it: the pid is the program's own)."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns(host), *argv], start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def run(self, host: str, argv: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns(host), *argv], timeout=timeout, **kw)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:  # its own session: the server and the engine workers it spawned
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(10)
        for host in list(self.hosts):
            subprocess.run(["ip", "netns", "del", self.ns(host)], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True)

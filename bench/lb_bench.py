"""Capacity through the load balancer: N bridge servers, each pinned to its own cores, behind HAProxy
(deploy/haproxy/haproxy.cfg, as shipped except addresses), load generators on the remaining cores.

For each value of --backends it starts that many servers and one HAProxy, waits until HAProxy's health checks
see every server UP, and runs bench/stream_bench.py against the proxy (latency from the clients; the server
histogram summed over the backends). One backend through the same proxy is the baseline for the scale-out
ratio, in the same run.

On the 16-core host (3 backends x 2 cores, HAProxy on 2 cores, clients on 8):

    python bench/lb_bench.py --backends 1 3 --cores-per-backend 2 --proxy-cpus 6,7 --client-cpus 8-15 \\
        --clients 8 --channels 8 --streams 200 400 600 --seconds 20 --json bench/results/lb_h200host.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from bench.stream_bench import cpu_list  # noqa: E402

CFG = os.path.join(ROOT, "deploy", "haproxy", "haproxy.cfg")


def render_config(bind: str, servers: list[str], sock: str, threads: int) -> str:
    text = open(CFG).read()
    text = re.sub(r"(?m)^  bind :50051", f"  bind {bind}", text)
    text = re.sub(r"(?m)^  stats socket \S+(.*)$", lambda m: f"  stats socket {sock}{m.group(1)}\n  nbthread {threads}",
                  text)
    text = re.sub(r"(?m)^  server .*\n", "", text)
    return text + "".join(f"  server bridge{i + 1} {addr}\n" for i, addr in enumerate(servers))


def haproxy_stats(sock: str) -> list[dict[str, str]]:
    """HAProxy's `show stat` rows (one per frontend / backend / server) from its stats socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    head = lines[0].lstrip("# ").split(",")
    return [dict(zip(head, line.split(","))) for line in lines[1:] if line]


def states(sock: str) -> dict[str, str]:
    return {r["svname"]: r["status"] for r in haproxy_stats(sock)
            if r["pxname"] == "bridge_servers" and r["svname"].startswith("bridge")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--cores-per-backend", type=int, default=2, help="backend i gets CPUs [i*k, i*k+k)")
    ap.add_argument("--first-cpu", type=int, default=0)
    ap.add_argument("--fronts", type=int, default=1, help="serve --fronts per backend")
    ap.add_argument("--proxy-cpus", default="", help="pin HAProxy here (and run one thread per CPU)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin anything (a small shared machine)")
    ap.add_argument("--per-backend", type=int, nargs="+", default=[],
                    help="load levels in streams per backend: N backends run N times each value (instead of the same "
                         "--streams for every backend count, which wastes levels far below or above capacity)")
    ap.add_argument("--json", help="write every level's results here")
    args, rest = ap.parse_known_args()
    if args.per_backend and "--streams" in rest:
        raise SystemExit("lb_bench: give either --per-backend or --streams, not both")  # the rest goes to stream_bench.py (--streams, --clients, --engine, ...)
    if shutil.which("haproxy") is None:
        raise SystemExit("lb_bench: haproxy is not installed (apt-get install haproxy)")
    proxy_cpus = cpu_list(args.proxy_cpus)
    tmp = tempfile.mkdtemp()
    results = []
    for n in args.backends:
        procs: list[subprocess.Popen] = []
        try:
            addrs, mports = [], []
            for i in range(n):
                cpus = list(range(args.first_cpu + i * args.cores_per_backend,
                                  args.first_cpu + (i + 1) * args.cores_per_backend))
                ready = os.path.join(tmp, f"ready-{n}-{i}.json")
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "bridge_server.cli", "serve", "--port", "0", "--metrics-port", "0",
                     "--workers", str(args.cores_per_backend), "--fronts", str(args.fronts), "--ready-file", ready,
                     "--log-level", "warning"], cwd=ROOT,
                    preexec_fn=None if args.no_pin else (lambda c=cpus: os.sched_setaffinity(0, c))))
                while not os.path.exists(ready):
                    if procs[-1].poll() is not None:
                        raise SystemExit(f"lb_bench: backend {i} failed to start")
                    time.sleep(0.05)
                info = json.load(open(ready))
                addrs.append(f"127.0.0.1:{info['port']}")
                mports.append(info["metrics_port"])
            port, sock = free_port(), os.path.join(tmp, f"haproxy-{n}.sock")
            cfg = os.path.join(tmp, f"haproxy-{n}.cfg")
            with open(cfg, "w") as fh:
                fh.write(render_config(f"127.0.0.1:{port}", addrs, sock, max(1, len(proxy_cpus))))
            procs.append(subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL,
                                          preexec_fn=(lambda: os.sched_setaffinity(0, proxy_cpus))
                                          if proxy_cpus and not args.no_pin else None))
            deadline = time.monotonic() + 60
            while True:
                try:
                    st = states(sock)
                    if len(st) == n and set(st.values()) == {"UP"}:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("lb_bench: HAProxy never saw every backend UP")
                time.sleep(0.1)
            print(f"lb_bench: {n} backend(s) UP behind HAProxy", flush=True)
            out = os.path.join(tmp, f"levels-{n}.json")
            levels = ["--streams", *(str(n * s) for s in args.per_backend)] if args.per_backend else []
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "stream_bench.py"), "--target",
                            f"127.0.0.1:{port}", "--metrics-ports", *map(str, mports), "--json", out, *levels, *rest],
                           cwd=ROOT, check=True)
            data = json.load(open(out))
            for row in data["rows"]:
                row["backends"] = n
            results.append(data)
        finally:
            for p in reversed(procs):
                p.terminate()
            for p in procs:
                p.wait(60)
    print("\n| backends | streams | errors | client p50 ms | client p99 ms | server p99 (bucket) ms | p99 <= budget |")
    print("|---|---|---|---|---|---|---|")
    for data in results:
        for r in data["rows"]:
            print(f"| {r['backends']} | {r['streams']} | {r['errors']} | {r['client_p50_ms']:.1f} | "
                  f"{r['client_p99_ms']:.1f} | <= {r['server_p99_bucket_ms']:.0f} | {'yes' if r['meets_target'] else 'no'} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"command": " ".join(sys.argv), "runs": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

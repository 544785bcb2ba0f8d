"""What transport security costs the server: the same N real-time StreamExpression streams against a plaintext
server, a TLS server and a TLS + bearer-token server, one after the other in one run (a fresh server each, same
settings), with the server's CPU seconds per stream.

The front process (gRPC, TLS, the token check) is what security touches; the engine workers do the same work in
every mode, so both the front's CPU and the whole server's (front + workers) are reported. Certificates come from
a CA made for the run (tests/tls_certs.py, the openssl command).

    python bench/tls_bench.py --streams 50 --seconds 30 --rounds 3

On a machine with more cores, give the server cores of its own and the client others, so neither's CPU time is
disturbed by the other (the per-stream CPU figure is then not at the mercy of a shared scheduler):

    python bench/tls_bench.py --server-cpus 0,1 --client-cpus 2,3 --workers 2 ...
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import grpc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc  # noqa: E402
from bench.stream_bench import cpu_list, cpu_model, cpu_seconds, load_speech, one_stream  # noqa: E402
from tests.tls_certs import Pki, make_pki  # noqa: E402

TOKEN = "bench-token-" + "5e1f0c2a9b7d4e3f8a6c"


class _WithMetadata:
    """The stub one_stream expects, with the bearer token on its StreamExpression calls."""

    def __init__(self, stub, metadata):
        self.stub, self.metadata = stub, metadata

    def StreamExpression(self):  # noqa: N802 - the stub's name
        return self.stub.StreamExpression(metadata=self.metadata)


def start_server(tmp: str, mode: str, pki, workers: int, cpus: list[int] | None = None
                 ) -> tuple[subprocess.Popen, dict]:
    ready = os.path.join(tmp, f"ready-{mode}-{time.monotonic_ns()}.json")
    extra = []
    if mode != "plaintext":
        extra += ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    if mode == "tls+token":
        tokens = os.path.join(tmp, "tokens")
        with open(tokens, "w") as fh:
            fh.write(TOKEN + "\n")
        extra += ["--auth-token-file", tokens]
    proc = subprocess.Popen([sys.executable, "-m", "bridge_server.cli", "serve", "--port", "0", "--metrics-port", "-1",
                             "--workers", str(workers), "--ready-file", ready, "--log-level", "warning", *extra],
                            cwd=ROOT, preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    deadline = time.monotonic() + 120
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the {mode} server did not start")
        time.sleep(0.05)
    with open(ready) as fh:
        return proc, json.load(fh)


async def run_streams(target: str, mode: str, pki, pcm: bytes, streams: int, seconds: float, chunk_s: float,
                      connections: int) -> tuple[list, list]:
    """`streams` streams over `connections` channels (each its own HTTP/2 connection and TLS handshake)."""
    channels = []
    for _ in range(connections):
        # A distinct channel argument per channel keeps gRPC from sharing one connection between them.
        opts = [("avatar-bridge.bench-connection", len(channels))]
        channels.append(grpc.aio.insecure_channel(target, options=opts) if mode == "plaintext" else
                        grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(pki.ca.read_bytes()), options=opts))
    stubs = []
    for ch in channels:
        stub = pb_grpc.AvatarBridgeStub(ch)
        stubs.append(_WithMetadata(stub, (("authorization", f"Bearer {TOKEN}"),)) if mode == "tls+token" else stub)
    lat, errors = [], []
    try:
        await asyncio.gather(*(one_stream(stubs[i % connections], pcm, 16000, chunk_s, seconds, i * chunk_s / streams,
                                          lat, errors) for i in range(streams)))
    finally:
        for ch in channels:
            await ch.close()
    return lat, errors


def given_pki(d: pathlib.Path) -> Pki:
    """Certificates made earlier (tests/tls_certs.make_pki's file names); only the CA and the server's are used."""
    need = [d / "test-ca.pem", d / "server.pem", d / "server.key"]
    missing = [p.name for p in need if not p.is_file()]
    if missing:
        raise SystemExit(f"--pki {d}: missing {', '.join(missing)} (make them with tests/tls_certs.make_pki)")
    return Pki(need[0], need[1], need[2], d / "client.pem", d / "client.key", d / "other-ca.pem")


def measure(tmp: str, mode: str, pki, pcm: bytes, args) -> dict:
    proc, info = start_server(tmp, mode, pki, args.workers, cpu_list(args.server_cpus))
    try:
        front, pids = [info["pid"]], [info["pid"], *info["worker_pids"]]
        front0, all0, t0 = cpu_seconds(front), cpu_seconds(pids), time.monotonic()
        lat, errors = asyncio.run(run_streams(f"127.0.0.1:{info['port']}", mode, pki, pcm, args.streams,
                                              args.seconds, args.chunk_ms / 1000, args.connections or args.streams))
        wall = time.monotonic() - t0
        front_cpu, all_cpu = cpu_seconds(front) - front0, cpu_seconds(pids) - all0
    finally:
        proc.terminate()
        proc.wait(30)
    return {"mode": mode, "streams": args.streams, "connections": args.connections or args.streams,
            "seconds": args.seconds, "frames": len(lat), "errors": len(errors),
            "first_error": errors[0] if errors else "", "wall_s": wall,
            "front_cpu_s_per_stream": front_cpu / args.streams, "server_cpu_s_per_stream": all_cpu / args.streams}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0, help="audio per stream, sent at real time")
    ap.add_argument("--chunk-ms", type=float, default=40.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--connections", type=int, default=0,
                    help="client connections the streams share (0 = one per stream, like separate game clients; "
                         "each TLS connection pays its own handshake)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="repeat plaintext / tls / tls+token this many times, rotating which goes first")
    ap.add_argument("--audio", default=os.path.join(ROOT, "examples", "hello.wav"))
    ap.add_argument("--server-cpus", default="", help="pin the server and its workers to these CPUs (e.g. 0,1)")
    ap.add_argument("--client-cpus", default="", help="pin the load generator to these CPUs (e.g. 2,3)")
    ap.add_argument("--pki", default="",
                    help="a folder holding test-ca.pem, server.pem and server.key to use instead of making them with "
                         "openssl (for a host without the openssl command; tests/tls_certs.py makes such a folder)")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    if args.client_cpus:
        os.sched_setaffinity(0, cpu_list(args.client_cpus))
    pcm = load_speech(args.audio)
    modes = ("plaintext", "tls", "tls+token")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pki = given_pki(pathlib.Path(args.pki)) if args.pki else make_pki(pathlib.Path(tmp) / "pki")
        for r in range(args.rounds):
            # Each round starts with the next mode, so no mode always runs first or last while other work on a
            # shared machine comes and goes.
            for mode in modes[r % 3:] + modes[:r % 3]:
                row = measure(tmp, mode, pki, pcm, args)
                row["round"] = r + 1
                rows.append(row)
                print(json.dumps(row), flush=True)

    def mean(mode: str, key: str) -> float:
        vals = [r[key] for r in rows if r["mode"] == mode]
        return sum(vals) / len(vals)

    def spread(mode: str, key: str) -> str:
        return " / ".join(f"{r[key]:.3f}" for r in rows if r["mode"] == mode)

    print(f"\n{args.connections or args.streams} client connection(s)")
    print("\n| mode | streams x seconds | frames | errors | front CPU s per stream (mean; each round) | vs plaintext | "
          "server (front + workers) CPU s per stream | vs plaintext |")
    print("|---|---|---|---|---|---|---|---|")
    base_f, base_a = mean("plaintext", "front_cpu_s_per_stream"), mean("plaintext", "server_cpu_s_per_stream")
    summary = {}
    for mode in modes:
        f, a = mean(mode, "front_cpu_s_per_stream"), mean(mode, "server_cpu_s_per_stream")
        frames = sum(r["frames"] for r in rows if r["mode"] == mode)
        errors = sum(r["errors"] for r in rows if r["mode"] == mode)
        summary[mode] = {"front_cpu_s_per_stream": f, "server_cpu_s_per_stream": a,
                         "front_overhead_pct": 100 * (f / base_f - 1), "server_overhead_pct": 100 * (a / base_a - 1)}
        print(f"| {mode} | {args.streams} x {args.seconds:g} s ({args.rounds} round(s)) | {frames} | {errors} | "
              f"{f:.3f} ({spread(mode, 'front_cpu_s_per_stream')}) | {summary[mode]['front_overhead_pct']:+.1f} % | "
              f"{a:.3f} | "
              f"{summary[mode]['server_overhead_pct']:+.1f} % |")
    if args.json:
        meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.node()} {os.cpu_count()} cores",
                "cpu": cpu_model(), "python": platform.python_version(), "workers": args.workers,
                "server_cpus": cpu_list(args.server_cpus), "client_cpus": cpu_list(args.client_cpus),
                "command": " ".join(sys.argv)}
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": rows, "summary": summary}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

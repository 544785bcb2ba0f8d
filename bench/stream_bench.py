"""Concurrent real-time StreamExpression streams against a local server.

Each stream sends 16 kHz PCM16 speech in chunks paced at real time, 30 fps out.
Latency per frame = (frame received by the client) - (client sent the audio
chunk that completes it, i.e. the chunk holding sample time + look-ahead),
so it includes gRPC transit both ways, the server and the worker. The server's
own view (frame written - chunk arrival) comes from its Prometheus histogram.

    python bench/stream_bench.py --streams 50 100 200 250 --seconds 20
    python bench/stream_bench.py --engine learned-v1 --streams 25 50 --seconds 20

On a machine with more cores, give the server its own cores and the load generator others, so the client's
CPU does not count against the server (the Foundation target is "N streams on 2 cores"):

    python bench/stream_bench.py --server-cpus 0,1 --client-cpus 2-15 --clients 6 --workers 2 ...
    python bench/stream_bench.py --server-cores 2 --clients 6 ...   # 2 whole physical cores, clients elsewhere

Several front processes (`serve --fronts N`, docs/scaling.md) beside one, in the same run; with fronts, give each
load-generator process several connections (--channels) so the kernel can spread them over the fronts:

    python bench/stream_bench.py --fronts 1 2 --channels 8 --server-cores 2 --clients 6 --streams 100 200 250

Against servers started elsewhere (a load balancer, bench/lb_bench.py), latency only:

    python bench/stream_bench.py --target 127.0.0.1:50051 --metrics-ports 9464 9465 9466 --streams 300 600
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request

import grpc
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from avatarbridge.v1 import bridge_pb2 as pb  # noqa: E402
from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc  # noqa: E402


def load_speech(path: str, rate: int = 16000) -> bytes:
    import soundfile as sf
    import soxr

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = soxr.resample(x.mean(axis=1), sr, rate) if sr != rate else x.mean(axis=1)
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


class ChunkClock:
    """When each audio chunk of one stream left, to time its frames: a frame's latency is its arrival minus
    the send time of the chunk that completes the audio it needs (its sample index plus the look-ahead)."""

    def __init__(self, rate: int):
        self.rate = rate
        self.lookahead_s = 0.0  # from the stream header
        self.ends: list[int] = []  # cumulative samples at the end of chunk i
        self.sent: list[float] = []  # its send time

    def chunk_sent(self, total_samples: int) -> None:
        self.ends.append(total_samples)
        self.sent.append(time.monotonic())

    def latency(self, sample_index: int, now: float) -> tuple[float, float] | None:
        """(latency s, send time of the completing chunk since the first chunk), or None for frames that only the
        end-of-audio marker completed."""
        j = bisect.bisect_left(self.ends, sample_index + int(round(self.lookahead_s * self.rate)))
        return (now - self.sent[j], self.sent[j] - self.sent[0]) if j < len(self.sent) else None


async def one_stream(stub, pcm: bytes, rate: int, chunk_s: float, seconds: float, delay: float,
                     lat: list, errors: list, engine: str = "") -> None:
    await asyncio.sleep(delay)
    step = int(rate * chunk_s) * 2
    n_chunks = int(seconds / chunk_s)
    clock = ChunkClock(rate)
    call = stub.StreamExpression()

    async def writer():
        await call.write(pb.ExpressionRequest(header=pb.StreamHeader(
            encoding=pb.AUDIO_ENCODING_PCM16, sample_rate=rate, channels=1, fps=30, engine=engine)))
        t0 = time.monotonic()
        total = 0
        for i in range(n_chunks):
            wait = t0 + i * chunk_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            off = (i * step) % (len(pcm) - step)
            await call.write(pb.ExpressionRequest(audio=pb.AudioChunk(data=pcm[off:off + step])))
            total += step // 2
            clock.chunk_sent(total)
        await call.write(pb.ExpressionRequest(end=pb.EndOfAudio()))
        await call.done_writing()

    w = asyncio.create_task(writer())
    try:
        async for resp in call:
            now = time.monotonic()
            kind = resp.WhichOneof("msg")
            if kind == "header":
                clock.lookahead_s = resp.header.lookahead_ms / 1000
            elif kind == "frames":
                for f in resp.frames.frames:
                    got = clock.latency(f.sample_index, now)
                    if got:
                        lat.append(got)
        await w
    except grpc.RpcError as err:
        errors.append(f"{err.code().name}: {err.details()}")


STEADY_AFTER_S = 2.0


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as fh:
            parts = fh.read().rsplit(")", 1)[1].split()
        total += (int(parts[11]) + int(parts[12])) / tick
    return total


def runqueue_wait_s(pids: list[int]) -> float:
    """Seconds the processes' threads spent runnable but not running (the kernel's schedstat): how long they
    queued for a CPU behind one another or other work."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                    total += int(fh.read().split()[1])
            except (OSError, IndexError, ValueError):
                pass  # a thread that ended, or a kernel without schedstats
    return total / 1e9


def steal_s(cpus: list[int]) -> float:
    """CPU time the hypervisor took from these CPUs (steal in /proc/stat), in seconds."""
    if not cpus:
        return 0.0
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    with open("/proc/stat") as fh:
        for line in fh:
            name, *vals = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus and len(vals) > 7:
                total += int(vals[7])
    return total / tick


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def cpu_list(spec: str) -> list[int]:
    """'0,1' or '2-15' or '0,4-7' -> CPU numbers."""
    out: list[int] = []
    for part in filter(None, spec.replace(" ", ",").split(",")):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def physical_split(n: int) -> tuple[list[int], list[int]]:
    """n CPUs on distinct physical cores for the server (never two hyper-threads of one core), and every CPU
    on the other cores for the load generator."""
    cores: dict[tuple[str, str], list[int]] = {}
    for cpu in sorted(os.sched_getaffinity(0)):
        topo = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
        try:
            key = tuple(open(topo + f).read().strip() for f in ("physical_package_id", "core_id"))
        except OSError:
            key = ("?", str(cpu))
        cores.setdefault(key, []).append(cpu)
    groups = list(cores.values())
    if len(groups) <= n:
        raise SystemExit(f"--server-cores {n}: this machine has only {len(groups)} physical cores available")
    return [g[0] for g in groups[:n]], [c for g in groups[n:] for c in g]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


STAGES = ("to_worker", "in_worker", "from_worker", "write")  # the server's avatar_bridge_latency_stage_seconds


def histogram(ports, name: str, labels: str = "") -> dict[float, float]:
    """The histogram's buckets (of the series with `labels`, e.g. 'stage="write"'), summed over the servers'
    /metrics endpoints."""
    out: dict[float, float] = {}
    for port in ([ports] if isinstance(ports, int) else ports):
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        for line in text.splitlines():
            if line.startswith(name + "_bucket") and labels in line:
                le = line.split('le="')[1].split('"')[0]
                key = float("inf") if le == "+Inf" else float(le)
                out[key] = out.get(key, 0.0) + float(line.split()[-1])
    return out


def bucket_quantile(before: dict, after: dict, q: float) -> float:
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0) for e in edges]
    total = counts[-1]
    if total == 0:
        return float("nan")
    for e, c in zip(edges, counts):
        if c >= q * total:
            return e
    return float("inf")


async def client_streams(target, pcm, ids, streams, seconds, chunk_s, engine, channels: int = 1
                         ) -> tuple[list, list]:
    """Streams `ids` of `streams` from one process over `channels` connections: -> (frame latencies s, errors)."""
    # Each channel its own subchannel pool, so its own TCP connection (channels to one target share one otherwise).
    chans = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
             for _ in range(max(1, channels))]
    try:
        stubs = [pb_grpc.AvatarBridgeStub(ch) for ch in chans]
        lat, errors = [], []
        # Stagger the starts over one chunk so the streams do not all tick in phase.
        await asyncio.gather(*(one_stream(stubs[k % len(stubs)], pcm, 16000, chunk_s, seconds, i * chunk_s / streams,
                                          lat, errors, engine) for k, i in enumerate(ids)))
    finally:
        for ch in chans:
            await ch.close()
    return lat, errors


def client_process(job: tuple) -> tuple[list, list]:
    target, pcm, ids, streams, seconds, chunk_s, engine, cpus, channels = job
    if cpus:
        os.sched_setaffinity(0, cpus)
    # The load generator's own full collections (tens of ms over gRPC's and asyncio's start-up objects) would be
    # read as server latency: its start-up heap goes out of the collector's sight, as the server's does.
    gc.collect()
    gc.freeze()
    return asyncio.run(client_streams(target, pcm, ids, streams, seconds, chunk_s, engine, channels))


def run_level(target, metrics_ports, pcm, streams, seconds, chunk_s, pids, engine: str = "", clients: int = 1,
              client_cpus: list[int] | None = None, channels: int = 1, front_pids: list[int] | None = None,
              server_cpus: list[int] | None = None) -> dict:
    """One load level. pids: every server process (for CPU), front_pids: the gRPC fronts among them."""
    before = histogram(metrics_ports, "avatar_bridge_frame_latency_seconds")
    rtt0 = histogram(metrics_ports, "avatar_bridge_worker_roundtrip_seconds")
    stage0 = {st: histogram(metrics_ports, "avatar_bridge_latency_stage_seconds", f'stage="{st}"') for st in STAGES}
    lag0 = histogram(metrics_ports, "avatar_bridge_event_loop_lag_seconds")
    front_pids = front_pids if front_pids is not None else pids[:1]
    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    front0 = cpu_seconds(front_pids)
    wait0, steal0 = runqueue_wait_s(pids), steal_s(server_cpus or [])
    if clients <= 1:
        lat, errors = asyncio.run(client_streams(target, pcm, range(streams), streams, seconds, chunk_s, engine,
                                                 channels))
    else:  # several load-generator processes (spawned: no gRPC state crosses a fork), streams dealt round robin
        import multiprocessing
        jobs = [(target, pcm, range(c, streams, clients), streams, seconds, chunk_s, engine, client_cpus, channels)
                for c in range(clients)]
        with multiprocessing.get_context("spawn").Pool(clients) as pool:
            parts = pool.map(client_process, jobs)
        lat = [x for part in parts for x in part[0]]
        errors = [e for part in parts for e in part[1]]
    wall = time.monotonic() - t0
    cpu = cpu_seconds(pids) - cpu0
    wait, steal = runqueue_wait_s(pids) - wait0, steal_s(server_cpus or []) - steal0
    after = histogram(metrics_ports, "avatar_bridge_frame_latency_seconds")
    rtt1 = histogram(metrics_ports, "avatar_bridge_worker_roundtrip_seconds")
    stage1 = {st: histogram(metrics_ports, "avatar_bridge_latency_stage_seconds", f'stage="{st}"') for st in STAGES}
    lag1 = histogram(metrics_ports, "avatar_bridge_event_loop_lag_seconds")
    lat_a = np.array(lat).reshape(-1, 2)
    lat_ms = lat_a[:, 0] * 1000
    steady = lat_ms[lat_a[:, 1] >= STEADY_AFTER_S]
    # ...and before the last second, when every stream ends within one chunk (its END, the last frames, DONE)
    middle = lat_ms[(lat_a[:, 1] >= STEADY_AFTER_S) & (lat_a[:, 1] < seconds - 1.0)] if len(lat) else lat_ms
    return {
        "streams": streams, "frames": len(lat), "errors": len(errors), "first_error": errors[0] if errors else "",
        "client_p50_ms": float(np.percentile(lat_ms, 50)) if len(lat) else None,
        "client_p99_ms": float(np.percentile(lat_ms, 99)) if len(lat) else None,
        "client_max_ms": float(lat_ms.max()) if len(lat) else None,
        # the same past each stream's first seconds (stream set-up, and every stream starting within one chunk)
        "client_p99_steady_ms": float(np.percentile(steady, 99)) if len(steady) else None,
        "client_p99_middle_ms": float(np.percentile(middle, 99)) if len(middle) else None,
        "server_p99_bucket_ms": bucket_quantile(before, after, 0.99) * 1000,
        # chunk handed to a worker until its frames were back in the front: the part of the latency spent in
        # ZeroMQ and the worker (queue + batch wait + engine), the rest being the front's own
        "worker_rtt_p50_bucket_ms": bucket_quantile(rtt0, rtt1, 0.50) * 1000,
        "worker_rtt_p99_bucket_ms": bucket_quantile(rtt0, rtt1, 0.99) * 1000,
        # the server's latency by stage (bucket upper bounds): which stage holds the tail
        "stage_p50_p99_bucket_ms": {st: [bucket_quantile(stage0[st], stage1[st], q) * 1000 for q in (0.5, 0.99)]
                                    for st in STAGES},
        "loop_lag_p50_p99_bucket_ms": [bucket_quantile(lag0, lag1, q) * 1000 for q in (0.5, 0.99)],
        "server_cpu_ms_per_stream_s": 1000 * cpu / (streams * seconds) if pids else None,
        "server_cores_used": cpu / wall if pids else None,
        # the server's threads' time runnable but waiting for a CPU, ms per second (summed over threads), and
        # the share of the server's CPUs that the hypervisor took (steal)
        "server_runqueue_wait_ms_per_s": 1000 * wait / wall if pids else None,
        "server_cpu_steal_pct": 100 * steal / (wall * len(server_cpus)) if server_cpus else None, "server_rss_mb": rss_mb(pids) if pids else None,
        "front_cores": (cpu_seconds(front_pids) - front0) / wall if pids else None,
    }


def start_server(workers: int, fronts: int, server_cpus: list[int], tmp: str) -> tuple[subprocess.Popen, dict]:
    ready = os.path.join(tmp, f"ready-{fronts}-{time.monotonic_ns()}.json")
    server = subprocess.Popen([sys.executable, "-m", "bridge_server.cli", "serve", "--port", "0",
                               "--metrics-port", "0", "--workers", str(workers), "--fronts", str(fronts),
                               "--ready-file", ready, "--log-level", "warning"], cwd=ROOT,
                              preexec_fn=(lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None)
    while not os.path.exists(ready):
        if server.poll() is not None:
            raise SystemExit("server failed to start")
        time.sleep(0.05)
    return server, json.load(open(ready))


def print_table(rows: list[dict]) -> None:
    nan = float("nan")

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    print("\n| fronts | streams | frames | errors | client p50 ms | client p99 ms | p99 after 2 s | "
          "server p99 (bucket) ms | worker round trip p50 / p99 (bucket) ms | server CPU ms per stream-second | "
          "server cores | front cores | server RSS MB "
          "| p99 <= budget |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['fronts']} | {r['streams']} | {r['frames']} | {r['errors']} | {f(r['client_p50_ms'], '.1f')} "
              f"| {f(r['client_p99_ms'], '.1f')} | {f(r['client_p99_steady_ms'], '.1f')} "
              f"| <= {r['server_p99_bucket_ms']:.0f} "
              f"| <= {r.get('worker_rtt_p50_bucket_ms', nan):.0f} / {r.get('worker_rtt_p99_bucket_ms', nan):.0f} "
              f"| {f(r['server_cpu_ms_per_stream_s'], '.2f')} | "
              f"{f(r['server_cores_used'], '.2f')} | {f(r['front_cores'], '.2f')} | {f(r['server_rss_mb'], '.0f')} "
              f"| {'yes' if r['meets_target'] else 'no'} |")
    staged = [r for r in rows if r.get("stage_p50_p99_bucket_ms")]
    if staged:
        print("\n| fronts | streams | " + " | ".join(f"{st} p50 / p99 (bucket) ms" for st in STAGES)
              + " | front loop lag p50 / p99 (bucket) ms | run-queue wait ms/s | steal % |")
        print("|---|---|" + "---|" * (len(STAGES) + 3))
        for r in staged:
            print(f"| {r['fronts']} | {r['streams']} | " + " | ".join(
                "<= {:.0f} / {:.0f}".format(*r["stage_p50_p99_bucket_ms"][st]) for st in STAGES)
                + " | <= {:.0f} / {:.0f} |".format(*r.get("loop_lag_p50_p99_bucket_ms", (nan, nan)))
                + f" {f(r.get('server_runqueue_wait_ms_per_s'), '.0f')} | {f(r.get('server_cpu_steal_pct'), '.1f')} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--chunk-ms", type=float, default=40.0)
    ap.add_argument("--workers", type=int, default=0, help="0 = one per core")
    ap.add_argument("--fronts", type=int, nargs="+", default=[1],
                    help="server front processes (serve --fronts); several values = one server each, same run")
    ap.add_argument("--channels", type=int, default=1, help="connections per load-generator process")
    ap.add_argument("--target", default="", help="host:port of servers started elsewhere (no server is started; "
                                                  "latency only, no server CPU)")
    ap.add_argument("--metrics-ports", type=int, nargs="*", default=[],
                    help="with --target: the servers' /metrics ports on 127.0.0.1 (their histograms are summed)")
    ap.add_argument("--audio", default=os.path.join(ROOT, "examples", "hello.wav"))
    ap.add_argument("--budget-ms", type=float, default=30.0, help="p99 target beyond the look-ahead")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--engine", default="", help="expression engine per stream (default: the server's default)")
    ap.add_argument("--server-cpus", default="", help="pin the server and its workers to these CPUs (e.g. 0,1)")
    ap.add_argument("--client-cpus", default="", help="pin the load generator to these CPUs (e.g. 2-15)")
    ap.add_argument("--server-cores", type=int, default=0,
                    help="pin the server to this many whole physical cores and the load generator to the rest")
    ap.add_argument("--clients", type=int, default=1, help="load-generator processes")
    ap.add_argument("--note", default="", help="free text stored with the results (e.g. what shares the machine)")
    args = ap.parse_args()
    server_cpus, client_cpus = cpu_list(args.server_cpus), cpu_list(args.client_cpus)
    if args.server_cores:
        server_cpus, client_cpus = physical_split(args.server_cores)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)

    pcm = load_speech(args.audio)
    tmp = tempfile.mkdtemp()
    rows = []
    for fronts in ([0] if args.target else args.fronts):
        server = None
        if args.target:
            target, mports, pids, front_pids = args.target, args.metrics_ports, [], []
        else:
            server, info = start_server(args.workers, fronts, server_cpus, tmp)
            target, mports = f"127.0.0.1:{info['port']}", [info["metrics_port"]]
            front_pids = [info["pid"], *info.get("front_pids", [])]  # with fronts: the supervisor + the fronts
            pids = [*front_pids, *info["worker_pids"]]
        try:
            for n in args.streams:
                row = run_level(target, mports, pcm, n, args.seconds, args.chunk_ms / 1000, pids, args.engine,
                                args.clients, client_cpus, args.channels, front_pids, server_cpus)
                row["fronts"] = fronts or "external"
                row["meets_target"] = (row["errors"] == 0 and row["client_p99_ms"] is not None
                                       and row["client_p99_ms"] <= args.budget_ms)
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            if server:
                server.terminate()
                server.wait(60)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.node()} {os.cpu_count()} cores",
            "cpu": cpu_model(), "server_cpus": server_cpus, "client_cpus": client_cpus, "clients": args.clients,
            "channels": args.channels, "python": platform.python_version(), "chunk_ms": args.chunk_ms,
            "seconds": args.seconds, "engine": args.engine or "(server default)", "note": args.note,
            "command": " ".join(sys.argv)}
    print_table(rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

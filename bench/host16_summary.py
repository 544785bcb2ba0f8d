"""The summary table of bench/host16_suite.sh: capacity per engine / chunk / fronts, TLS cost, and the scale-out
ratio behind HAProxy, from the JSON files the benches wrote in OUT, or, for a part cut short by its timeout, from
the per-level JSON lines in OUT/suite.log.

    python bench/host16_summary.py OUT
"""
from __future__ import annotations

import json
import os
import re
import sys

BUDGET_MS = 30.0
STREAM_PARTS = {  # log tag -> (JSON file, engine, chunk ms)
    "default40": ("default_40ms.json", "default (learned-v2)", 40),
    "default100": ("default_100ms.json", "default (learned-v2)", 100),
    "dsp": ("dsp-v1_40ms.json", "dsp-v1", 40),
    "learned1": ("learned-v1_40ms.json", "learned-v1", 40),
}


def log_lines(out: str) -> dict[str, list[str]]:
    """suite.log's lines by part tag, without the tag."""
    tagged: dict[str, list[str]] = {}
    path = os.path.join(out, "suite.log")
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            m = re.match(r"\[(\w+)\] (.*)", line.rstrip("\n"))
            if m:
                tagged.setdefault(m.group(1), []).append(m.group(2))
    return tagged


def json_rows(lines: list[str], key: str = "streams") -> list[dict]:
    """The benches' per-level JSON lines (those holding `key`), not the servers' JSON log lines."""
    rows = []
    for line in lines:
        if line.startswith("{"):
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and key in row:
                rows.append(row)
    return rows


def load(out: str, name: str):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None


def meets(r: dict) -> bool:
    return r.get("errors") == 0 and r.get("client_p99_ms") is not None and r["client_p99_ms"] <= BUDGET_MS


def f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def capacity(rows: list[dict]) -> str:
    ok = [r["streams"] for r in rows if meets(r)]
    if not rows:
        return "not run"
    if not ok:
        return f"< {min(r['streams'] for r in rows)}"
    top = max(ok)
    above = [r["streams"] for r in rows if r["streams"] < top and not meets(r)]
    return f"{top}" + (f" (but {', '.join(map(str, above))} missed)" if above else "")


def main() -> int:
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    logs = log_lines(out)
    print("# Host-16 suite summary\n")
    print("Phase 1 ran three parts at the same time on disjoint CPUs (default engine: server 0-1, clients 2-5; "
          "TLS: server 6-7, client 8-9; dsp-v1 / learned-v1: server 10-11, clients 12-15). Phase 2 (HAProxy) ran "
          f"alone. Capacity = largest level with 0 errors and client p99 <= {BUDGET_MS:g} ms.\n")

    print("## Streams, server on 2 pinned CPUs, 2 workers\n")
    print("| engine | chunk ms | fronts | streams | errors | client p50 ms | client p99 ms | p99 after 2 s | "
          "server CPU ms / stream-s | server cores (fronts) | p99 <= 30 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    caps = []
    for tag, (name, engine, chunk) in STREAM_PARTS.items():
        data = load(out, name)
        rows = data["rows"] if data else json_rows(logs.get(tag, []))
        src = "" if data else " (from the log: part cut short)" if rows else ""
        for fronts in sorted({r["fronts"] for r in rows}, key=str):
            sub = [r for r in rows if r["fronts"] == fronts]
            for r in sub:
                print(f"| {engine}{src} | {chunk} | {fronts} | {r['streams']} | {r['errors']} | "
                      f"{f(r['client_p50_ms'], '.1f')} | {f(r['client_p99_ms'], '.1f')} | "
                      f"{f(r.get('client_p99_steady_ms'), '.1f')} | {f(r.get('server_cpu_ms_per_stream_s'), '.2f')} | "
                      f"{f(r.get('server_cores_used'), '.2f')} ({f(r.get('front_cores'), '.2f')}) | "
                      f"{'yes' if meets(r) else 'no'} |")
            caps.append((engine, chunk, fronts, capacity(sub)))
        if not rows:
            caps.append((engine, chunk, "-", "not run / no rows"))
    print("\n| engine | chunk ms | fronts | capacity (streams) |\n|---|---|---|---|")
    for c in caps:
        print(f"| {c[0]} | {c[1]} | {c[2]} | {c[3]} |")

    print("\n## TLS cost (tls_bench: server pinned to 2 CPUs, 1 worker, client on 2 others; rounds rotated)\n")
    tls = load(out, "tls.json")
    rows = tls["rows"] if tls else json_rows(logs.get("tls", []), "mode")
    if rows:
        base = {k: [r[k] for r in rows if r["mode"] == "plaintext"] for k in
                ("front_cpu_s_per_stream", "server_cpu_s_per_stream")}
        print("| mode | rounds | frames | errors | front CPU s / stream (each round) | vs plaintext | "
              "server CPU s / stream | vs plaintext |\n|---|---|---|---|---|---|---|---|")
        for mode in ("plaintext", "tls", "tls+token"):
            sub = [r for r in rows if r["mode"] == mode]
            if not sub or not base["front_cpu_s_per_stream"]:
                continue
            fm = sum(r["front_cpu_s_per_stream"] for r in sub) / len(sub)
            am = sum(r["server_cpu_s_per_stream"] for r in sub) / len(sub)
            bf = sum(base["front_cpu_s_per_stream"]) / len(base["front_cpu_s_per_stream"])
            ba = sum(base["server_cpu_s_per_stream"]) / len(base["server_cpu_s_per_stream"])
            each = " / ".join(f"{r['front_cpu_s_per_stream']:.3f}" for r in sub)
            print(f"| {mode} | {len(sub)} | {sum(r['frames'] for r in sub)} | {sum(r['errors'] for r in sub)} | "
                  f"{fm:.3f} ({each}) | {100 * (fm / bf - 1):+.1f} % | {am:.3f} | {100 * (am / ba - 1):+.1f} % |")
    else:
        print("not run / no rows")

    print("\n## Load balancer (lb_bench: backends of 2 CPUs / 2 fronts / 2 workers; HAProxy on 2 CPUs; 40 ms chunks)\n")
    lb = load(out, "lb.json")
    if lb:
        rows = [r for run in lb["runs"] for r in run["rows"]]
    else:  # from the log: the backend count is announced before its levels
        rows, n = [], None
        for line in logs.get("lb", []):
            m = re.match(r"lb_bench: (\d+) backend", line)
            if m:
                n = int(m.group(1))
            elif line.startswith("{"):
                for r in json_rows([line]):
                    r["backends"] = n
                    rows.append(r)
    if rows:
        print("| backends | streams | errors | client p50 ms | client p99 ms | p99 after 2 s | p99 <= 30 ms |\n"
              "|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['backends']} | {r['streams']} | {r['errors']} | {f(r['client_p50_ms'], '.1f')} | "
                  f"{f(r['client_p99_ms'], '.1f')} | {f(r.get('client_p99_steady_ms'), '.1f')} | "
                  f"{'yes' if meets(r) else 'no'} |")
        cap = {}
        for n in sorted({r["backends"] for r in rows if r["backends"] is not None}):
            ok = [r["streams"] for r in rows if r["backends"] == n and meets(r)]
            cap[n] = max(ok) if ok else 0
            print(f"\ncapacity with {n} backend(s): {capacity([r for r in rows if r['backends'] == n])}")
        if cap.get(1) and 3 in cap:
            print(f"\nscale-out ratio 3 / 1 backends: {cap[3] / cap[1]:.2f} (target >= 2.7; coarse: levels are "
                  "multiples of the per-backend steps)")
    else:
        print("not run / no rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())

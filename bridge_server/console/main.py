"""`avatar-bridge console`: start the web console against --server, or beside an embedded server."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import webbrowser


def add_parser(sub) -> None:
    ap = sub.add_parser("console", help="web console on http://127.0.0.1:8080: 3D avatar, curves, live mic, video "
                                        "(docs/console.md)",
                        description="Serve the web console. It is a gRPC client of --server; without --server it "
                                    "starts an embedded server as `animate` does. Everything it serves ships in the "
                                    "package (no CDN): it works offline.")
    ap.add_argument("--server", help="host:port of a running bridge server; omitted = start an embedded one")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080; 0 = any free port)")
    ap.add_argument("--metrics-url", default="",
                    help="the server's Prometheus endpoint, shown and read by the status panel "
                         "(embedded server: found automatically)")
    ap.add_argument("--clip", help="a speech file the page animates on open (e.g. examples/line.wav)")
    ap.add_argument("--max-upload-mb", type=int, default=64, help="largest upload accepted, in MB (default 64)")
    ap.add_argument("--open", action="store_true", help="open the page in the default browser")
    ap.add_argument("--ready-file", help="write {\"port\": ...} here once listening (tests, scripts)")
    ap.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for the embedded server, e.g. --server-arg=--video-ckpt-dir=ckpt/s2v "
                         "(repeatable)")
    ap.set_defaults(run=run)


def run(args) -> int:
    from bridge_server.client import embedded_server

    def fail(msg: str) -> int:
        print(f"avatar-bridge console: {msg}", file=sys.stderr)
        return 2

    if args.clip and not os.path.isfile(args.clip):
        return fail(f"--clip {args.clip}: no such file")
    if not 1 <= args.max_upload_mb <= 4096:
        return fail(f"--max-upload-mb must be 1..4096, got {args.max_upload_mb}")
    if not 0 <= args.port <= 65535:
        return fail(f"--port must be 0..65535, got {args.port}")
    info: dict = {}
    ctx = (contextlib.nullcontext(args.server) if args.server
           else embedded_server(extra_args=["--metrics-port", "0", *args.server_arg], ready_info=info))
    try:
        with ctx as target:
            metrics_url = args.metrics_url or (f"http://127.0.0.1:{info['metrics_port']}/metrics"
                                               if info.get("metrics_port", -1) > 0 else "")
            return _serve(args, target, metrics_url)
    except RuntimeError as exc:
        return fail(str(exc))


def _serve(args, target: str, metrics_url: str) -> int:
    import asyncio

    from aiohttp import web

    from bridge_server.console.app import build_app

    app = build_app(target, metrics_url=metrics_url, max_upload=args.max_upload_mb << 20,
                    clip=os.path.abspath(args.clip) if args.clip else "")

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        try:
            await site.start()
        except OSError as exc:
            raise RuntimeError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another --port")
        port = runner.addresses[0][1]
        url = f"http://{args.host}:{port}/"
        print(f"avatar-bridge console: {url} (server {target})", flush=True)
        if args.ready_file:
            tmp = args.ready_file + ".tmp"
            with open(tmp, "w") as fh:
                json.dump({"port": port, "server": target}, fh)
            os.replace(tmp, args.ready_file)
        if args.open:
            webbrowser.open(url)
        stop = asyncio.Event()  # SIGTERM/SIGINT end the loop so the embedded server is stopped too
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except RuntimeError as exc:
        print(f"avatar-bridge console: {exc}", file=sys.stderr)
        return 1
    return 0

"""Bench only (issue 19): run the bridge server's front on uvloop instead of asyncio's default loop, to measure
what it saves. Loaded through PYTHONPATH by a benchmark command; a process that is not the server's front, or a
Python without uvloop, is left alone."""
import sys

if any("bridge_server.cli" in a for a in sys.orig_argv):
    try:
        import asyncio

        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        sys.stderr.write("uvloopprobe: the front runs on uvloop\n")
    except ImportError:
        pass

"""Plugin-free outputs: mirror a stream's frames to another protocol (Live Link Face, VMC, ...).

The server writes every frame to the gRPC client; an output is a second, optional
destination configured server-wide with ``outputs`` (comma-separated URLs, e.g.
``livelinkface://192.168.1.20:11111,vmc://127.0.0.1:39539``). Each scheme is one module
in this package that calls :func:`register`. Outputs do I/O only (UDP sends on the event
loop); they never compute animation.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable
from urllib.parse import unquote, urlsplit

log = logging.getLogger("bridge_server.outputs")


@dataclass(frozen=True)
class OutputTarget:
    scheme: str
    host: str
    port: int
    options: dict[str, str]  # query parameters, e.g. ?subject=Face


@dataclass(frozen=True)
class StreamInfo:
    stream_id: str
    fps: int
    blendshape_names: list[str]  # canonical ARKit-52 order (engine.rig.ARKIT_NAMES)
    bone_names: list[str]  # engine.rig.BONE_NAMES; rotations are xyzw per bone in this order


class FrameOutput:
    """One stream's mirror. ``send`` gets each worker FrameBlock (engine.worker.protocol.FrameBlock)
    right after it was written to the gRPC client; ``close`` is called exactly once at stream end.
    ``send`` must not block: pace with loop.call_at if the protocol needs real-time spacing."""

    def send(self, block, sample_rate: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


Factory = Callable[[OutputTarget, StreamInfo], FrameOutput]
Check = Callable[[OutputTarget], None]  # raises ValueError naming the bad option and the fix
_SCHEMES: dict[str, tuple[Factory, int]] = {}
_CHECKS: dict[str, Check] = {}


def register(scheme: str, factory: Factory, default_port: int, check: Check | None = None) -> None:
    """``check`` runs at start-up on every target of this scheme, so a bad option stops the server
    before it serves instead of silently mirroring something else."""
    _SCHEMES[scheme] = (factory, default_port)
    if check is not None:
        _CHECKS[scheme] = check


def check_keys(target: OutputTarget, known: dict[str, str]) -> None:
    """Refuse query keys a scheme does not know (a typo would otherwise be ignored); ``known`` maps
    each key to a one-line description for the message."""
    for key in target.options:
        if key not in known:
            listed = "; ".join(f"{k}= {v}" for k, v in known.items())
            raise ValueError(f"outputs: unknown option {key!r} in {target.scheme}://{target.host}:{target.port}; "
                             f"known options: {listed}")


def _load_builtin() -> None:
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


def parse_targets(spec: str) -> list[OutputTarget]:
    """Parse the ``outputs`` setting; raises ValueError naming the bad entry and the known schemes."""
    _load_builtin()
    targets = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        url = urlsplit(item if "://" in item else "//" + item)
        if url.scheme not in _SCHEMES:
            known = ", ".join(f"{s}://host:{p}" for s, (_, p) in sorted(_SCHEMES.items())) or "none installed"
            raise ValueError(f"outputs: unknown scheme in {item!r}; known: {known}")
        try:
            port = url.port or _SCHEMES[url.scheme][1]
        except ValueError:
            raise ValueError(f"outputs: bad port in {item!r}; use scheme://host:port") from None
        opts: dict[str, str] = {}
        for kv in filter(None, url.query.split("&")):
            key, eq, value = kv.partition("=")
            if not eq:
                raise ValueError(f"outputs: option {kv!r} in {item!r} has no value; write key=value")
            if key in opts:
                raise ValueError(f"outputs: option {key!r} given twice in {item!r}; keep one")
            opts[key] = unquote(value)
        target = OutputTarget(url.scheme, url.hostname or "127.0.0.1", port, opts)
        if url.scheme in _CHECKS:
            _CHECKS[url.scheme](target)
        targets.append(target)
    return targets


def open_outputs(targets: list[OutputTarget], info: StreamInfo) -> list[FrameOutput]:
    return [_SCHEMES[t.scheme][0](t, info) for t in targets]


def send_all(outputs: list[FrameOutput], block, sample_rate: int) -> None:
    for out in outputs:
        try:
            out.send(block, sample_rate)
        except OSError as exc:  # a mirror must never break the gRPC stream
            log.warning("output send failed", extra={"output": type(out).__name__, "error": str(exc)})


def close_all(outputs: list[FrameOutput]) -> None:
    for out in outputs:
        try:
            out.close()
        except OSError as exc:
            log.warning("output close failed", extra={"output": type(out).__name__, "error": str(exc)})

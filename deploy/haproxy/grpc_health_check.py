"""Print the bytes of one grpc.health.v1.Health/Check call as raw HTTP/2, hex, for HAProxy's `tcp-check send-binary`.

HAProxy 2.6 (Debian 12) can send HTTP/2 health checks, but `http-check send body` cannot carry the NUL bytes of a
gRPC message prefix, so the check is spelled out frame by frame and sent as a TCP check:

  client preface, an empty SETTINGS frame, HEADERS (POST /grpc.health.v1.Health/Check, content-type
  application/grpc, te: trailers) and DATA carrying one length-prefixed HealthCheckRequest{service}.

The server's reply carries the HealthCheckResponse in a DATA frame; SERVING (status 1) is the 7 bytes
00 00000002 0801, which `tcp-check expect binary` looks for (NOT_SERVING would be ...0802, so a draining server
fails the check).

    python deploy/haproxy/grpc_health_check.py            # service "" (the whole server)
    python deploy/haproxy/grpc_health_check.py --service avatarbridge.v1.AvatarBridge
"""
from __future__ import annotations

import argparse
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SERVING_REPLY = bytes([0, 0, 0, 0, 2, 0x08, 0x01])  # gRPC prefix (uncompressed, 2 bytes) + field 1 = SERVING


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(name_index: int, value: bytes) -> bytes:
    """Literal header field without indexing, name from the static table (index < 15)."""
    return bytes([name_index]) + bytes([len(value)]) + value


def hpack_literal_new(name: bytes, value: bytes) -> bytes:
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def health_check_bytes(service: str = "", authority: str = "avatar-bridge") -> bytes:
    block = (b"\x83"  # :method POST (static 3)
             + b"\x86"  # :scheme http (static 6)
             + hpack_literal(4, b"/grpc.health.v1.Health/Check")  # :path (static 4)
             + hpack_literal(1, authority.encode())  # :authority (static 1)
             + b"\x0f\x10" + bytes([16]) + b"application/grpc"  # content-type (static 31, 4-bit prefix 15 + 16)
             + hpack_literal_new(b"te", b"trailers"))
    msg = (b"\x0a" + bytes([len(service)]) + service.encode()) if service else b""  # HealthCheckRequest.service
    body = b"\x00" + struct.pack(">I", len(msg)) + msg
    return (PREFACE + frame(0x4, 0, 0, b"")  # SETTINGS (empty: defaults)
            + frame(0x1, 0x4, 1, block)  # HEADERS, END_HEADERS, stream 1
            + frame(0x0, 0x1, 1, body))  # DATA, END_STREAM


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--service", default="", help="service name to check (default: the whole server)")
    args = ap.parse_args()
    print("send-binary", health_check_bytes(args.service).hex())
    print("expect binary", SERVING_REPLY.hex())


if __name__ == "__main__":
    main()

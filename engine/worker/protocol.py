"""Wire format between the bridge server (ROUTER) and engine workers (DEALER).

Every message is a ZeroMQ multipart message whose first part is a one-byte
kind. Stream ids are 8-byte little-endian unsigned ints; sequence numbers
4-byte. JSON carries small metadata; arrays travel as raw little-endian bytes.

server -> worker
  OPEN   [b"O", sid, json(config)]                 open a live stream
  AUDIO  [b"A", sid, seq, pcm bytes]               client encoding, any split
  END    [b"E", sid, seq]                          end of audio: flush
  CLIP   [b"F", sid, json(config), file bytes]     decode + animate a whole file
  NEXT   [b"N", sid, seq]                          send the next block of a clip
  CLOSE  [b"C", sid]                               forget the stream (no reply)
  STOP   [b"S"]                                    exit cleanly

worker -> server
  READY  [b"R", json(info)]                        once, after loading engines
  OPENED [b"o", sid, json({engine, lookahead_s})]  reply to OPEN / CLIP
  BEAT   [b"H"]                                    heartbeat, every second
  FRAMES [b"f", sid, seq, json(meta), sample_index u64[n], weights f32[n,52],
          rotations f32[n,4,4], translation f32[n,3] or b""]
  DONE   [b"d", sid, seq, json(status)]            after END / last clip block
  ERROR  [b"e", sid, seq, json({code, message})]   the stream is over
"""
from __future__ import annotations

import json
import struct

OPEN, AUDIO, END, CLIP, NEXT, CLOSE, STOP = b"O", b"A", b"E", b"F", b"N", b"C", b"S"
READY, OPENED, BEAT, FRAMES, DONE, ERROR = b"R", b"o", b"H", b"f", b"d", b"e"

_SID = struct.Struct("<Q")
_SEQ = struct.Struct("<I")


def sid_bytes(sid: int) -> bytes:
    return _SID.pack(sid)


def sid_int(b: bytes) -> int:
    return _SID.unpack(b)[0]


def seq_bytes(seq: int) -> bytes:
    return _SEQ.pack(seq)


def seq_int(b: bytes) -> int:
    return _SEQ.unpack(b)[0]


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def loads(b: bytes):
    return json.loads(b)

"""The one place that turns what a worker sent (frame blocks, opened / done metadata) into protobuf messages."""
from __future__ import annotations

from avatarbridge.v1 import bridge_pb2 as pb
from engine.rig import ARKIT_NAMES, BONE_NAMES
from engine.worker.specs import Done, Opened

API_VERSION = "avatarbridge.v1"
MICROS = 1_000_000  # capture time codes: sample_index = timestamp in microseconds


def frame_batch(block, sample_rate: int) -> pb.FrameBatch:
    """A worker's frame block -> FrameBatch; times are sample_index / sample_rate on the input's clock."""
    n = len(block)
    weights = block.weights.tolist()
    rots = block.rotations.tolist()
    trans = block.translation.tolist() if block.translation is not None else None
    vis = block.visemes.tolist() if block.visemes is not None else None
    idx = block.sample_index.tolist()
    conf = block.confidence.tolist() if block.confidence is not None else [1.0] * n
    lost = block.face_lost.tolist() if block.face_lost is not None else [False] * n
    frames = []
    for i in range(n):
        f = pb.Frame(index=block.first_index + i, time=idx[i] / sample_rate, sample_index=idx[i],
                     weights=weights[i], rotations=rots[i], confidence=conf[i], face_lost=lost[i])
        if trans is not None:
            f.head_translation.x, f.head_translation.y, f.head_translation.z = trans[i]
        if vis is not None:
            f.visemes.extend(vis[i])
        frames.append(f)
    return pb.FrameBatch(frames=frames)


def expression_header(stream_id: str, fps: int, sample_rate: int, opened: Opened) -> pb.ExpressionHeader:
    """The header of every stream of frames (expression, capture, Speak), from the worker's OPENED reply."""
    return pb.ExpressionHeader(
        stream_id=stream_id, blendshape_names=ARKIT_NAMES, bone_names=BONE_NAMES, fps=fps,
        lookahead_ms=opened.lookahead_s * 1000.0, sample_rate=sample_rate, engine=opened.engine,
        api_version=API_VERSION, unmeasured_blendshapes=opened.unmeasured_blendshapes,
        viseme_names=opened.viseme_names)


def stream_status(sent: int, done: Done, opened: Opened) -> pb.StreamStatus:
    """The final status of a stream of frames, from the worker's DONE reply."""
    return pb.StreamStatus(frames_sent=sent, audio_seconds=done.audio_seconds, warnings=done.warnings,
                           engine=opened.engine, face_lost_frames=done.face_lost_frames)


def video_header(stream_id: str, opened: Opened, encoding: int) -> pb.VideoHeader:
    """The video worker's OPENED: engine = the model it runs, video = the size, rate and frames to expect."""
    v = opened.video
    return pb.VideoHeader(stream_id=stream_id, width=v.width, height=v.height, fps=v.fps, model=opened.engine,
                          frame_encoding=encoding, expected_frames=v.frame_count, warnings=opened.warnings)


def video_frame_batches(block, max_bytes: int):
    """A block of rendered video frames -> lists of VideoFrame, each list under the gRPC send limit."""
    batch, size = [], 0
    times = block.times.tolist()
    for i, data in enumerate(block.images):
        if batch and size + len(data) + 64 > max_bytes:
            yield batch
            batch, size = [], 0
        batch.append(pb.VideoFrame(index=block.first_index + i, time=times[i], data=data))
        size += len(data) + 64
    if batch:
        yield batch

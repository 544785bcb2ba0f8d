"""A frame track rendered to MP4 and/or a PNG sequence: frames placed by their time codes at the track's fps."""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

from engine.render.avatar import Avatar
from engine.render.frames import FrameTrack, infer_fps
from engine.render.renderer import FaceRenderer
from engine.render.writers import Mp4Writer, PngSequenceWriter, frame_schedule


@dataclasses.dataclass
class PreviewResult:
    video_frames: int     # output frames (constant rate)
    rendered: int         # distinct input frames rendered
    fps: float
    duration_s: float     # video_frames / fps


def render_preview(track: FrameTrack, avatar: Avatar, *, out: str | pathlib.Path | None = None,
                   png_dir: str | pathlib.Path | None = None, audio: str | pathlib.Path | None = None,
                   width: int = 512, height: int = 512, fps: float | None = None, eyes: str = "bones",
                   progress: Callable[[int, int], None] | None = None) -> PreviewResult:
    """Render every output frame k (time k / fps; fps: the given one, else the track's, else inferred from the time
    codes) from the input frame placed there by its time code (writers.frame_schedule). Writes `out` (.mp4, with
    `audio` muxed) and/or `png_dir`; a failed run removes its partial MP4."""
    if out is None and png_dir is None:
        raise ValueError("nothing to write: give an .mp4 path and/or a PNG directory")
    fps = float(fps or track.fps or infer_fps(track.times))
    show = frame_schedule(track.times, fps)
    writers = []
    renderer = FaceRenderer(avatar, width, height, eyes=eyes)
    try:
        if out is not None:
            writers.append(Mp4Writer(out, width, height, fps, audio=audio))
        if png_dir is not None:
            writers.append(PngSequenceWriter(png_dir))
        last, img, rendered = -1, None, 0
        for k, i in enumerate(show):
            if i != last:
                img = renderer.render(track.weights[i], track.rotations[i])
                last, rendered = i, rendered + 1
            for w in writers:
                w.write(img, key=int(i)) if isinstance(w, PngSequenceWriter) else w.write(img)
            if progress is not None:
                progress(k + 1, len(show))
        for w in writers:
            w.close()
    except BaseException:
        for w in writers:
            if isinstance(w, Mp4Writer):
                w.abort()
        raise
    finally:
        renderer.close()
    return PreviewResult(len(show), rendered, fps, len(show) / fps)

"""Reading frames.json / frames.csv (docs/output_formats.md) into arrays, with errors that name the field."""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib

import numpy as np

from engine.rig.arkit import ARKIT_INDEX, ARKIT_NAMES, BONE_NAMES, NUM_BLENDSHAPES, NUM_BONES

FORMAT = "avatar-bridge.frames.v1"


class FramesError(ValueError):
    """The frames file is malformed; the message names the field."""


@dataclasses.dataclass
class FrameTrack:
    times: np.ndarray       # (N,) seconds on the audio's clock, strictly increasing
    weights: np.ndarray     # (N, 52) canonical ARKit order, 0..1
    rotations: np.ndarray   # (N, 16) x, y, z, w for Head, Neck, LeftEye, RightEye
    fps: float | None       # the stream's frame rate (JSON header); None if the file does not say (CSV)
    indices: np.ndarray     # (N,) frame indices as written

    def __len__(self) -> int:
        return len(self.times)


def load_frames(path: str | pathlib.Path) -> FrameTrack:
    """frames.json (avatar-bridge.frames.v1) or frames.csv, chosen by the suffix (.csv = CSV, anything else JSON)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FramesError(f"frames file {path} does not exist")
    return _load_csv(path) if path.suffix.lower() == ".csv" else _load_json(path)


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FramesError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _load_json(path: pathlib.Path) -> FrameTrack:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FramesError(f"{path} is not valid JSON ({exc}); expected {FORMAT} (docs/output_formats.md)") from exc
    if not isinstance(doc, dict):
        raise FramesError(f"{path}: the top level must be an object with 'format' and 'frames'")
    if doc.get("format") != FORMAT:
        raise FramesError(f"{path}: field 'format' is {doc.get('format')!r}, expected {FORMAT!r}")
    fps = doc.get("fps")
    if fps is not None:
        fps = _number(fps, "field 'fps'")
        if fps <= 0:
            raise FramesError(f"{path}: field 'fps' must be positive, got {fps}")
    frames = doc.get("frames")
    if not isinstance(frames, list) or not frames:
        raise FramesError(f"{path}: field 'frames' must be a non-empty list")
    n = len(frames)
    times, idx = np.zeros(n), np.zeros(n, np.int64)
    weights = np.zeros((n, NUM_BLENDSHAPES), np.float32)
    rotations = np.tile(np.array([0, 0, 0, 1], np.float64), (n, NUM_BONES))
    for i, fr in enumerate(frames):
        at = f"frames[{i}]"
        if not isinstance(fr, dict):
            raise FramesError(f"{path}: {at} must be an object")
        if "time" not in fr:
            raise FramesError(f"{path}: {at}.time is missing")
        times[i] = _number(fr["time"], f"{path}: {at}.time")
        idx[i] = int(_number(fr.get("index", i), f"{path}: {at}.index"))
        shapes = fr.get("blendshapes", {})
        if not isinstance(shapes, dict):
            raise FramesError(f"{path}: {at}.blendshapes must be an object of ARKit name -> weight")
        for name, v in shapes.items():
            k = ARKIT_INDEX.get(name)
            if k is None:
                raise FramesError(f"{path}: {at}.blendshapes.{name} is not one of the 52 ARKit names "
                                  f"(camelCase, e.g. jawOpen)")
            weights[i, k] = _number(v, f"{path}: {at}.blendshapes.{name}")
        rots = fr.get("rotations", {})
        if not isinstance(rots, dict):
            raise FramesError(f"{path}: {at}.rotations must be an object of bone -> [x, y, z, w]")
        for bone, q in rots.items():
            if bone not in BONE_NAMES:
                raise FramesError(f"{path}: {at}.rotations.{bone} is not a bone; expected {', '.join(BONE_NAMES)}")
            if not isinstance(q, list) or len(q) != 4:
                raise FramesError(f"{path}: {at}.rotations.{bone} must be a list [x, y, z, w]")
            b = BONE_NAMES.index(bone)
            rotations[i, 4 * b:4 * b + 4] = [_number(v, f"{path}: {at}.rotations.{bone}") for v in q]
    return _finish(path, times, weights, rotations, fps, idx)


def _load_csv(path: pathlib.Path) -> FrameTrack:
    rot_cols = [f"{b}.{c}" for b in BONE_NAMES for c in ("qx", "qy", "qz", "qw")]
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise FramesError(f"{path} is not a readable CSV: {exc}") from exc
    if len(rows) < 2:
        raise FramesError(f"{path}: expected a header row and at least one frame row")
    head = [h.strip() for h in rows[0]]
    col = {h: j for j, h in enumerate(head)}
    missing = [c for c in ("time", *ARKIT_NAMES, *rot_cols) if c not in col]
    if missing:
        raise FramesError(f"{path}: header lacks column(s) {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}"
                          f" (layout: docs/output_formats.md)")
    n = len(rows) - 1
    times, idx = np.zeros(n), np.arange(n, dtype=np.int64)
    weights = np.zeros((n, NUM_BLENDSHAPES), np.float32)
    rotations = np.zeros((n, 4 * NUM_BONES))
    names = ["time", *ARKIT_NAMES, *rot_cols]
    for i, row in enumerate(rows[1:]):
        vals = []
        for name in names:
            j = col[name]
            try:
                v = float(row[j])
            except (IndexError, ValueError):
                raise FramesError(f"{path}: row {i + 2}, column {name!r}: "
                                  f"{(row[j] if j < len(row) else '<missing>')!r} is not a number") from None
            if not math.isfinite(v):
                raise FramesError(f"{path}: row {i + 2}, column {name!r} must be finite")
            vals.append(v)
        times[i] = vals[0]
        weights[i] = vals[1:1 + NUM_BLENDSHAPES]
        rotations[i] = vals[1 + NUM_BLENDSHAPES:]
        if "index" in col:
            try:
                idx[i] = int(row[col["index"]])
            except (IndexError, ValueError):
                raise FramesError(f"{path}: row {i + 2}, column 'index' must be an integer") from None
    return _finish(path, times, weights, rotations, None, idx)


def _finish(path, times, weights, rotations, fps, idx) -> FrameTrack:
    bad = np.nonzero(np.diff(times) <= 0)[0]
    if len(bad):
        i = int(bad[0]) + 1
        raise FramesError(f"{path}: frame {i} has time {times[i]:.6f} s, not after frame {i - 1} "
                          f"({times[i - 1]:.6f} s); times must increase strictly")
    if times[0] < 0:
        raise FramesError(f"{path}: frame 0 has negative time {times[0]}")
    q = rotations.reshape(len(times), NUM_BONES, 4)
    norms = np.linalg.norm(q, axis=2)
    zero = np.argwhere(norms < 1e-6)
    if len(zero):
        i, b = zero[0]
        raise FramesError(f"{path}: frame {i} rotation {BONE_NAMES[b]} is a zero quaternion; identity is [0, 0, 0, 1]")
    rotations = (q / norms[..., None]).reshape(len(times), -1)
    return FrameTrack(times, np.clip(weights, 0.0, 1.0), rotations, fps, idx)


def infer_fps(times: np.ndarray) -> float:
    """The frame rate of a track whose file does not say (CSV): the median frame interval, snapped to a
    common rate within 1 %."""
    if len(times) < 2:
        return 30.0
    fps = 1.0 / float(np.median(np.diff(times)))
    for common in (24, 25, 30, 48, 50, 60, 120):
        if abs(fps - common) / common < 0.01:
            return float(common)
    return fps

"""Input preparation and checks: portrait, audio, generation size."""
from __future__ import annotations

import io
import math

import numpy as np

from engine.audio import AudioError, decode_file, resample

MIN_IMAGE_SIDE = 64
MAX_ASPECT = 2.5  # beyond this the centre crop at any supported size cuts the subject away
MIN_FACE_FRACTION = 0.1  # face height / image height below which the DiT has too few tokens for the face


class InputError(ValueError):
    """Bad request input; ``field`` names the request field at fault."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def parse_size(size: str) -> int:
    """'704*384' (Wan2.2's and LiveAvatar's W*H notation) -> max area in pixels."""
    try:
        a, b = (int(v) for v in size.lower().replace("x", "*").split("*"))
    except ValueError:
        raise InputError(f"size must look like 704*384 (width*height), got {size!r}", "size") from None
    if a < 64 or b < 64 or a * b > 1280 * 1280:
        raise InputError(f"size {size} is out of range: each side >= 64 px and area <= 1280*1280", "size")
    return a * b


def choose_size(h: int, w: int, max_area: int) -> tuple[int, int]:
    """Largest multiple-of-64 (H, W) with the image's aspect and H·W <= max_area (Wan's 100-step search)."""
    def c64(v: float) -> int:
        return int(math.ceil(v / 64) * 64)
    top = math.sqrt(max_area / (h * w)) if h * w > max_area else 1.0
    for i in range(100):
        s = top * (1 - i / 100)
        oh, ow = c64(h * s), c64(w * s)
        if oh * ow <= max_area:
            return oh, ow
    return 64, 64


def decode_image(data: bytes) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError("image is empty; send the bytes of a PNG or JPEG portrait", "image")
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"image ({len(data)} bytes) is not a decodable PNG/JPEG ({exc})", "image") from None
    return np.asarray(img.convert("RGB"))


def check_image(img: np.ndarray, face_model: str | None = None) -> list[str]:
    """Raise on unusable portraits; return warnings. The face check uses engine.capture (MediaPipe Face
    Landmarker) when this build has it; otherwise it is skipped and a warning says so."""
    h, w = img.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise InputError(f"image is {w}x{h}; the portrait needs at least {MIN_IMAGE_SIDE} px on each side", "image")
    if max(h, w) / min(h, w) > MAX_ASPECT:
        raise InputError(f"image aspect {w}x{h} ({max(h, w) / min(h, w):.2f}:1) is too extreme; crop the portrait "
                         f"to at most {MAX_ASPECT}:1 around the face (e.g. 9:16, 1:1 or 16:9)", "image")
    warnings = []
    try:
        box = detect_face(img, face_model)
    except ImportError:
        warnings.append("face check skipped: engine.capture (MediaPipe) is not installed in this build")
        return warnings
    except Exception as exc:  # e.g. the Face Landmarker model file is missing: generate anyway, say so
        warnings.append(f"face check skipped: {exc}")
        return warnings
    if box is None:
        raise InputError("no face found in the portrait (none, or one too small to detect: MediaPipe misses faces "
                         "under about 1/8 of the image height); send a photo with one clearly visible, frontal "
                         "face filling at least a fifth of its height", "image")
    face_h = box[3] - box[1]
    if face_h < MIN_FACE_FRACTION * h:
        raise InputError(f"the face is tiny ({face_h:.0f} px of the image's {h} px height); crop the portrait so "
                         f"the face fills at least {MIN_FACE_FRACTION:.0%} of its height", "image")
    return warnings


def detect_face(img: np.ndarray, face_model: str | None = None):
    """(x0, y0, x1, y1) in pixels of the largest face (MediaPipe Face Landmarker via engine.capture), None if none.
    face_model: the face_landmarker.task to use; None = look it up (engine.capture.models)."""
    from engine.capture import CaptureSettings, FaceCapture, locate

    fc = FaceCapture(str(locate(explicit=face_model or None)), CaptureSettings(smoothing=False))
    try:
        return fc.process(np.ascontiguousarray(img), 1).face_box
    finally:
        fc.close()


def crop_resize(img: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """Resize the shorter side to min(oh, ow)... then centre-crop (Wan's ref preprocessing), uint8 HxWx3."""
    from PIL import Image

    h, w = img.shape[:2]
    s = max(oh / h, ow / w)
    nh, nw = max(oh, round(h * s)), max(ow, round(w * s))
    im = Image.fromarray(img).resize((nw, nh), Image.BICUBIC)
    top, left = (nh - oh) // 2, (nw - ow) // 2
    return np.asarray(im)[top:top + oh, left:left + ow]


def load_audio(data: bytes, max_seconds: float = 3600.0) -> tuple[np.ndarray, list[str]]:
    """Any decodable file -> 16 kHz mono float32, with warnings for conversion, clipping, leading silence."""
    try:
        x, sr, warnings = decode_file(data)
    except AudioError as exc:
        raise InputError(str(exc), "audio") from None
    warnings = list(warnings)
    channels = _channels(data)
    if sr != 16000 or channels not in (None, 1):
        warnings.append(f"audio converted from {sr} Hz{f' {channels}-channel' if channels else ''} to 16 kHz mono "
                        "(the wav2vec2 encoder's input)")
    x = resample(x, sr, 16000)
    if not x.size or x.size < 1600:
        raise InputError(f"audio is {x.size / 16000:.2f} s long; send at least 0.1 s of speech", "audio")
    if x.size / 16000 > max_seconds:
        raise InputError(f"audio is {x.size / 16000:.0f} s long; the limit is {max_seconds:.0f} s", "audio")
    clipped = float(np.mean(np.abs(x) >= 0.999))
    if clipped > 0.001:
        warnings.append(f"audio clips ({clipped:.1%} of samples at full scale); lip sync may suffer — lower the gain")
    lead = _leading_silence(x)
    if lead >= 1.0:
        warnings.append(f"audio starts with {lead:.1f} s of silence; the face stays still until speech begins")
    return x, warnings


def _channels(data: bytes) -> int | None:
    try:
        import soundfile as sf
        return sf.info(io.BytesIO(data)).channels
    except Exception:
        return None


def _leading_silence(x: np.ndarray, sr: int = 16000, thresh_db: float = -45.0) -> float:
    win = sr // 50
    n = x.size // win
    if not n:
        return 0.0
    rms = np.sqrt(np.mean(x[:n * win].reshape(n, win) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms) > thresh_db)[0]
    return (loud[0] if loud.size else n) * win / sr

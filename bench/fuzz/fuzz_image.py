"""Fuzz captured-image decoding (engine/capture/images.py decode_image), as CaptureStream uses it.

Input: byte 0 = CaptureImage.encoding (0 auto, 1 JPEG, 2 PNG, 3 RAW_RGB, 4 RAW_RGBA, 5 RAW_BGRA, 6 unknown),
bytes 1-4 = width and height (uint16 LE, read for RAW_*), the rest is image.data. max_pixels is the server's
default (4096 x 4096).

Clean rejection: ImageError (a ValueError with the field: image.data / image.encoding / image.width).
A decoded image must be H x W x 3 uint8 with both sides >= 32 and W*H within max_pixels.
"""
import os
import struct
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from bench.fuzz import harness  # noqa: E402

import atheris  # noqa: E402
import numpy as np  # noqa: E402

with atheris.instrument_imports(include=["engine.capture.images", "PIL.PngImagePlugin", "PIL.JpegImagePlugin",
                                         "PIL.ImageFile"]):
    from PIL import ImageFile, JpegImagePlugin, PngImagePlugin  # noqa: F401
    from engine.capture.images import ImageError, decode_image

MAX_PIXELS = 4096 * 4096
warnings.simplefilter("ignore")  # PIL's DecompressionBombWarning and friends: only exceptions count


def one_input(data: bytes) -> None:
    if len(data) < 5:
        return
    encoding = data[0] % 7
    width, height = struct.unpack("<HH", data[1:5])
    try:
        img = decode_image(data[5:], encoding, width, height, MAX_PIXELS)
    except ImageError as exc:
        assert exc.field in ("image.data", "image.encoding", "image.width") and str(exc)
        return
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, img.shape
    h, w = img.shape[:2]
    assert h >= 32 and w >= 32 and h * w <= MAX_PIXELS


if __name__ == "__main__":
    harness.main("image", one_input, max_len=16384)

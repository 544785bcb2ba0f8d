"""Decode one captured image (JPEG, PNG or raw pixels) to HxWx3 uint8 RGB, with bounded size."""
from __future__ import annotations

import io

import numpy as np

# Encodings, numbered as the proto's ImageEncoding.
AUTO, JPEG, PNG, RAW_RGB, RAW_RGBA, RAW_BGRA = range(6)
NAMES = {AUTO: "auto (JPEG or PNG)", JPEG: "JPEG", PNG: "PNG", RAW_RGB: "RAW_RGB", RAW_RGBA: "RAW_RGBA",
         RAW_BGRA: "RAW_BGRA"}
RAW_CHANNELS = {RAW_RGB: 3, RAW_RGBA: 4, RAW_BGRA: 4}
MIN_SIDE = 32


class ImageError(ValueError):
    def __init__(self, message: str, field: str = "image.data"):
        super().__init__(message)
        self.field = field


def sniff(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    for magic, name in ((b"GIF8", "GIF"), (b"RIFF", "WEBP/RIFF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
                        (b"MM\x00*", "TIFF")):
        if data.startswith(magic):
            return name
    return ""


def check_size(w: int, h: int, max_pixels: int) -> None:
    if w < MIN_SIDE or h < MIN_SIDE:
        raise ImageError(f"the image is {w}x{h}; both sides must be at least {MIN_SIDE} px for a face to be found "
                         "(send the camera frame, not a thumbnail)")
    if w * h > max_pixels:
        raise ImageError(f"the image is {w}x{h} = {w * h} pixels, over the server's limit of {max_pixels} "
                         "(max_image_pixels); downscale it (faces are found at 640x480)")


def decode_image(data: bytes, encoding: int = AUTO, width: int = 0, height: int = 0,
                 max_pixels: int = 4096 * 4096) -> np.ndarray:
    if not data:
        raise ImageError("image.data is empty; send the encoded image (JPEG/PNG) or raw pixels")
    if encoding in RAW_CHANNELS:
        ch = RAW_CHANNELS[encoding]
        if width <= 0 or height <= 0:
            raise ImageError(f"{NAMES[encoding]} needs image.width and image.height (got {width}x{height})",
                             "image.width")
        check_size(width, height, max_pixels)
        if len(data) != width * height * ch:
            raise ImageError(f"{NAMES[encoding]} {width}x{height} needs {width * height * ch} bytes "
                             f"({ch} per pixel, rows top to bottom), got {len(data)}")
        px = np.frombuffer(data, np.uint8).reshape(height, width, ch)
        return px[..., [2, 1, 0]] if encoding == RAW_BGRA else px[..., :3]
    if encoding not in (AUTO, JPEG, PNG):
        raise ImageError(f"image.encoding {encoding} is not supported; use JPEG, PNG, RAW_RGB, RAW_RGBA or RAW_BGRA",
                         "image.encoding")
    kind = sniff(data)
    if kind not in ("JPEG", "PNG"):
        what = f"a {kind} image" if kind else f"not an image (starts {data[:8].hex()})"
        raise ImageError(f"image.data is {what}; send JPEG or PNG, or raw pixels with a RAW_* encoding")
    if encoding != AUTO and kind != NAMES[encoding]:
        raise ImageError(f"image.encoding says {NAMES[encoding]} but the data is {kind}; fix the encoding field",
                         "image.encoding")
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        check_size(img.width, img.height, max_pixels)  # before the pixels are decoded
        img = img.convert("RGB")  # grey, palette, 16-bit, CMYK, alpha -> RGB
        return np.asarray(img)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow refuses > 2 x MAX_IMAGE_PIXELS already in open()
        raise ImageError(f"image.data declares more pixels than the server's limit of {max_pixels} "
                         f"(max_image_pixels): {exc}; downscale it (faces are found at 640x480)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"image.data is a damaged {kind} ({exc}); send a complete image") from None

"""Raw glTF 2.0 access: buffers, accessors and images as numpy arrays.

pygltflib parses the JSON / GLB container; this module turns accessors into arrays, including what exporters
use to shrink avatars: ``KHR_mesh_quantization`` (normalized integer attributes), ``EXT_meshopt_compression``
(gltfpack's buffer codec, decoded with meshoptimizer's reference decoder via the ``meshopt`` wheel), sparse
accessors and ``EXT_texture_webp`` images (Pillow).
"""
from __future__ import annotations

import base64
import io
import json
import pathlib

import numpy as np

COMPONENT_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
# Extensions that change how data must be read: the ones we read, and the ones we can safely ignore for a preview.
SUPPORTED_REQUIRED = {"EXT_meshopt_compression", "KHR_mesh_quantization", "EXT_texture_webp",
                      "KHR_materials_unlit", "KHR_texture_transform", "KHR_materials_emissive_strength"}


MAX_ACCESSOR_COUNT = 1 << 24  # 16.7 M elements: far past any avatar, short of an allocation that takes the machine
MAX_VIEW_BYTES = 1 << 28  # 256 MiB decompressed per bufferView


class AvatarError(ValueError):
    """The avatar file cannot be used; the message says why and what to do."""


class GltfFile:
    """One glTF 2.0 asset (.glb or .gltf with its buffers) with decoded views cached."""

    def __init__(self, path: str | pathlib.Path):
        import pygltflib

        self.path = pathlib.Path(path)
        if not self.path.is_file():
            raise AvatarError(f"avatar file {self.path} does not exist")
        head = self.path.read_bytes()[:4096]
        if head[:4] != b"glTF":
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
                ok = isinstance(doc, dict) and str(doc.get("asset", {}).get("version", "")).startswith("2")
            except (UnicodeDecodeError, json.JSONDecodeError):
                ok = False
            if not ok:
                raise AvatarError(f"avatar file {self.path} is not a glTF 2.0 file (.glb binary or .gltf JSON with "
                                  f"asset.version 2.x); convert it first, e.g. FBX/VRM -> glb with Blender")
        try:
            self.gltf = pygltflib.GLTF2().load(str(self.path))
        except Exception as exc:  # pygltflib raises many kinds on a damaged file
            raise AvatarError(f"avatar file {self.path} is damaged: {type(exc).__name__}: {exc}") from exc
        if self.gltf is None:
            raise AvatarError(f"avatar file {self.path} could not be parsed as glTF 2.0")
        missing = sorted(set(self.gltf.extensionsRequired or []) - SUPPORTED_REQUIRED)
        if missing:
            raise AvatarError(f"avatar file {self.path} requires glTF extensions this renderer does not read: "
                              f"{', '.join(missing)}; re-export without them (e.g. `gltf-transform copy` or "
                              f"`gltfpack -cc` instead of Draco)")
        self._buffers: dict[int, bytes] = {}
        self._views: dict[int, tuple[bytes, int | None]] = {}

    # -- bytes ---------------------------------------------------------------------------------------------------
    def buffer(self, index: int) -> bytes:
        if index not in self._buffers:
            buf = self.gltf.buffers[index]
            if buf.uri is None:
                if (buf.extensions or {}).get("EXT_meshopt_compression", {}).get("fallback"):
                    data = b""  # placeholder buffer: only meshopt-compressed views point at it
                else:
                    data = self.gltf.binary_blob() or b""
            elif buf.uri.startswith("data:"):
                data = base64.b64decode(buf.uri.split(",", 1)[1])
            else:
                try:
                    data = (self.path.parent / buf.uri).read_bytes()
                except OSError as exc:
                    raise AvatarError(f"avatar {self.path}: buffer {index} file {buf.uri!r} is missing: {exc}") from exc
            self._buffers[index] = data
        return self._buffers[index]

    def view(self, index: int) -> tuple[bytes, int | None]:
        """The bytes of a bufferView (decompressed if meshopt-compressed) and its byteStride."""
        if index not in self._views:
            bv = self.gltf.bufferViews[index]
            ext = (bv.extensions or {}).get("EXT_meshopt_compression")
            if ext:
                import meshopt

                src = self.buffer(ext["buffer"])
                start = ext.get("byteOffset", 0)
                data = src[start:start + ext["byteLength"]]
                stride, count, mode = ext["byteStride"], ext["count"], ext.get("mode", "ATTRIBUTES")
                if not (0 < stride <= 256 and 0 <= count and count * stride <= MAX_VIEW_BYTES):
                    raise AvatarError(f"avatar file {self.path}: bufferView {index} (EXT_meshopt_compression) claims "
                                      f"{count} x {stride} bytes, more than a preview avatar can hold; re-export it")
                filt = ext.get("filter", "NONE")
                out = meshopt.decode_gltf_buffer(bytes(data), count, stride, mode, None if filt == "NONE" else filt)
                if mode != "ATTRIBUTES":
                    out = out.astype(np.uint16 if stride == 2 else np.uint32)
                raw = np.ascontiguousarray(out).tobytes()
                self._views[index] = (raw, bv.byteStride)
            else:
                src = self.buffer(bv.buffer)
                start = bv.byteOffset or 0
                self._views[index] = (src[start:start + bv.byteLength], bv.byteStride)
        return self._views[index]

    # -- accessors -----------------------------------------------------------------------------------------------
    def accessor(self, index: int, as_float: bool = True) -> np.ndarray:
        """An accessor as a (count, n) array; normalized integers become floats in [-1, 1] / [0, 1]."""
        a = self.gltf.accessors[index]
        dtype = np.dtype(COMPONENT_DTYPES[a.componentType])
        n = TYPE_SIZES[a.type]
        if not (isinstance(a.count, int) and 0 < a.count <= MAX_ACCESSOR_COUNT):
            raise AvatarError(f"avatar file {self.path}: accessor {index} has count {a.count!r}; glTF needs 1.."
                              f"{MAX_ACCESSOR_COUNT} here; the file is damaged, re-export it")
        if a.bufferView is None:
            arr = np.zeros((a.count, n), dtype)
        else:
            raw, stride = self.view(a.bufferView)
            elem = dtype.itemsize * n
            stride = stride or elem
            buf = np.frombuffer(raw, np.uint8, count=(a.count - 1) * stride + elem, offset=a.byteOffset or 0)
            if stride == elem:
                arr = buf.view(dtype).reshape(a.count, n)
            else:
                rows = np.lib.stride_tricks.as_strided(buf, (a.count, elem), (stride, 1))
                arr = np.ascontiguousarray(rows).view(dtype).reshape(a.count, n)
        if a.sparse is not None:
            arr = arr.copy()
            sp = a.sparse
            idx = self._sparse_part(sp.indices.bufferView, sp.indices.byteOffset, sp.indices.componentType, 1, sp.count)
            val = self._sparse_part(sp.values.bufferView, sp.values.byteOffset, a.componentType, n, sp.count)
            arr[idx.reshape(-1).astype(np.int64)] = val
        if as_float:
            arr = dequantize(arr, a.normalized)
        return arr

    def _sparse_part(self, view: int, offset: int | None, ctype: int, n: int, count: int) -> np.ndarray:
        raw, _ = self.view(view)
        dtype = np.dtype(COMPONENT_DTYPES[ctype])
        return np.frombuffer(raw, dtype, count=count * n, offset=offset or 0).reshape(count, n)

    # -- images --------------------------------------------------------------------------------------------------
    def texture_image(self, texture_index: int) -> np.ndarray | None:
        """The RGBA uint8 image of a texture (top row first, as glTF UVs expect), or None if it has none."""
        from PIL import Image

        tex = self.gltf.textures[texture_index]
        source = tex.source
        for ext_name in ("EXT_texture_webp", "KHR_texture_basisu", "EXT_texture_avif"):
            ext = (tex.extensions or {}).get(ext_name)
            if ext and ext_name == "EXT_texture_webp":
                source = ext["source"]
        if source is None:
            return None
        img = self.gltf.images[source]
        if img.bufferView is not None:
            data, _ = self.view(img.bufferView)
        elif img.uri and img.uri.startswith("data:"):
            data = base64.b64decode(img.uri.split(",", 1)[1])
        elif img.uri:
            data = (self.path.parent / img.uri).read_bytes()
        else:
            return None
        with Image.open(io.BytesIO(bytes(data))) as im:
            return np.asarray(im.convert("RGBA"))


def dequantize(arr: np.ndarray, normalized: bool | None) -> np.ndarray:
    """glTF's normalized-integer rule (KHR_mesh_quantization): int8 c/127, uint8 c/255, int16 c/32767, ... ."""
    if arr.dtype == np.float32:
        return arr
    if not normalized:
        return arr.astype(np.float32)
    info = np.iinfo(arr.dtype)
    out = arr.astype(np.float32) / float(info.max)
    return np.maximum(out, -1.0) if info.min < 0 else out

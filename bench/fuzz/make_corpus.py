"""Build the seed corpus of every fuzz target (bench/fuzz/fuzz_<name>.py) at run time.

Seeds come from three places, each a few KB at most:
  * ../shared/data media (speech, images, videos, avatars), cut or re-encoded small here, never copied whole
    into the repository (skipped, with a note, where ../shared is missing: CI then fuzzes from the rest);
  * files made here with the project's own writers (a one-triangle avatar, tiny checkpoints, tiny videos);
  * the hand-made seeds committed in bench/fuzz/seeds/<name>/.
Each seed carries the small option prefix its target reads first (see the target's docstring).

    python bench/fuzz/make_corpus.py                 # all targets into the cache dir, prints the paths
    python bench/fuzz/make_corpus.py audio --out DIR

The cache dir is $AVATAR_BRIDGE_FUZZ_CACHE or ~/.cache/avatar-bridge/fuzz/<name>.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pathlib
import struct
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SHARED = pathlib.Path(os.environ.get("AVATAR_BRIDGE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SEEDS = pathlib.Path(__file__).resolve().parent / "seeds"
HEAD = 4096  # bytes kept of a big shared file


def _shared(pattern: str) -> list[pathlib.Path]:
    return sorted(SHARED.glob(pattern)) if SHARED.is_dir() else []


def _speech(seconds: float = 0.25, rate: int = 16000) -> np.ndarray:
    import soundfile as sf

    path = ROOT / "examples" / "hello.wav"
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != rate:
        import soxr

        x = soxr.resample(x, sr, rate)
    start = len(x) // 3
    return x[start:start + int(seconds * rate)].astype(np.float32)


# ------------------------------------------------------------------------------------------------ targets
def seeds_validation() -> dict[str, bytes]:
    from avatarbridge.v1 import bridge_pb2 as pb

    out = {}
    style = pb.ExpressionStyle(emotion=pb.EMOTION_HAPPY, emotion_strength=0.7, intensity=1.2, head_motion=0.5, seed=7)
    msgs = [
        (0, pb.ExpressionRequest(header=pb.StreamHeader(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate=16000,
                                                        channels=1, fps=30, stream_id="take-1", style=style))),
        (0, pb.ExpressionRequest(header=pb.StreamHeader(encoding=pb.AUDIO_ENCODING_FLOAT32, sample_rate=48000,
                                                        channels=2, fps=60, engine="dsp-v1"))),
        (1, pb.AnimateClipRequest(audio_file=b"RIFF\x24\x00\x00\x00WAVEfmt ", fps=30, engine="learned-v2",
                                  transcript="Hello world, it's 2026.", language="en-US", style=style,
                                  format_hint="wav")),
        (1, pb.AnimateClipRequest(audio_file=b"ID3", fps=60, phones=[
            pb.PhoneTiming(start=0.0, end=0.1, phone="HH"), pb.PhoneTiming(start=0.1, end=0.25, phone="AH")])),
        (2, pb.CaptureRequest(header=pb.CaptureHeader(stream_id="cam", fps=30, settings=pb.CaptureSettings(
            max_faces=2, face_index=1, smoothing=False, mirrored=True)))),
        (3, pb.CaptureVideoRequest(header=pb.CaptureVideoHeader(stream_id="v", skip_audio=True,
                                                                settings=pb.CaptureSettings(max_faces=1)))),
    ]
    for i, (kind, m) in enumerate(msgs):
        out[f"msg{i}"] = bytes([kind]) + m.SerializeToString()
    return out


def seeds_audio() -> dict[str, bytes]:
    import soundfile as sf

    out = {}
    x = _speech(0.2)
    for fmt, sub, hint in (("WAV", "PCM_16", 2), ("WAV", "FLOAT", 2), ("FLAC", "PCM_16", 4), ("OGG", "VORBIS", 3)):
        buf = io.BytesIO()
        sf.write(buf, np.stack([x, x * 0], 1) if sub == "FLOAT" else x, 16000, format=fmt, subtype=sub)
        out[f"{fmt.lower()}_{sub.lower()}"] = bytes([hint]) + buf.getvalue()[:HEAD * 2]
    out["mp3"] = bytes([1]) + _pyav_audio(x, "mp3", "mp3")
    out["m4a"] = bytes([5]) + _pyav_audio(x, "mp4", "aac")
    for p in _shared("audio/*.wav")[:3] + _shared("audio/*.mp3"):
        out["shared_" + p.stem] = bytes([0]) + p.read_bytes()[:HEAD]
    return out


def _pyav_audio(x: np.ndarray, container: str, codec: str, rate: int = 16000) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as c:
        s = c.add_stream(codec, rate=rate if codec != "mp3" else 22050)
        s.layout = "mono"
        res = av.AudioResampler(format=s.codec_context.format.name, layout="mono", rate=s.rate)
        frame = av.AudioFrame.from_ndarray(x[None, :], format="fltp", layout="mono")
        frame.sample_rate = rate
        for f in res.resample(frame) + res.resample(None):
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)
    return buf.getvalue()[:HEAD * 2]


def seeds_pcm() -> dict[str, bytes]:
    x = _speech(0.05)
    pcm16 = (x * 32767).astype("<i2").tobytes()
    f32 = x.astype("<f4").tobytes()
    return {"pcm16_mono": bytes([0b0000, 7]) + pcm16, "pcm16_stereo_48k": bytes([0b1110, 3]) + pcm16,
            "f32_mono_44k": bytes([0b1001, 13]) + f32, "f32_stereo_8k": bytes([0b0111, 1]) + f32[:1001],
            "f32_nan": bytes([0b0001, 5]) + f32[:40] + struct.pack("<f", float("nan")) + f32[40:80]}


def seeds_image() -> dict[str, bytes]:
    from PIL import Image

    out = {}
    for p in _shared("images/*")[:6]:
        with Image.open(p) as im:
            im = im.convert("RGB")
            im.thumbnail((48, 48))
            for fmt, enc in (("JPEG", 1), ("PNG", 2)):
                buf = io.BytesIO()
                im.save(buf, fmt)
                out[f"{p.stem}_{fmt.lower()}"] = bytes([enc, 0, 0, 0, 0]) + buf.getvalue()
        out[f"{p.stem}_head"] = bytes([0, 0, 0, 0, 0]) + p.read_bytes()[:HEAD]
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 255, (40, 36, 3), np.uint8))
    for mode in ("L", "P", "RGBA", "I;16", "CMYK"):
        buf = io.BytesIO()
        small.convert(mode).save(buf, "PNG" if mode != "CMYK" else "JPEG")
        out[f"mode_{mode.replace(';', '')}"] = bytes([0, 0, 0, 0, 0]) + buf.getvalue()
    raw = rng.integers(0, 255, (32, 32, 4), np.uint8).tobytes()
    out["raw_rgb"] = bytes([3]) + struct.pack("<HH", 32, 32) + raw[:32 * 32 * 3]
    out["raw_bgra"] = bytes([5]) + struct.pack("<HH", 32, 32) + raw
    return out


def seeds_video() -> dict[str, bytes]:
    out = {}
    for container, vcodec, acodec in (("mp4", "mpeg4", "aac"), ("matroska", "mpeg4", "flac"),
                                      ("webm", "libvpx", "libopus"), ("mov", "png", None), ("mp4", "libx264", None)):
        try:
            out[f"tiny_{container}_{vcodec}"] = _tiny_video(container, vcodec, acodec)
        except Exception as exc:  # a codec this PyAV build lacks: fewer seeds, not a failure
            print(f"make_corpus: no {container}/{vcodec} seed ({exc})", file=sys.stderr)
    for p in _shared("video/*.mp4")[:2]:
        out["shared_" + p.stem] = p.read_bytes()[:HEAD]  # the head only: the moov box may be past it
    return out


def _tiny_video(container: str, vcodec: str, acodec: str | None, n: int = 3, size: int = 32) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as c:
        v = c.add_stream(vcodec, rate=10)
        v.width = v.height = size
        v.pix_fmt = {"mjpeg": "yuvj420p", "png": "rgb24"}.get(vcodec, "yuv420p")
        a = None
        if acodec:
            a = c.add_stream(acodec, rate=48000 if acodec == "libopus" else 16000)
            a.layout = "mono"
        rng = np.random.default_rng(1)
        for i in range(n):
            img = np.full((size, size, 3), 40 * i, np.uint8) + rng.integers(0, 20, (size, size, 3), np.uint8)
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in v.encode(None):
            c.mux(pkt)
        if a is not None:
            x = _speech(n / 10, a.rate)
            res = av.AudioResampler(format=a.codec_context.format.name, layout="mono", rate=a.rate)
            fr = av.AudioFrame.from_ndarray(x[None, :], format="fltp", layout="mono")
            fr.sample_rate = a.rate
            for f in res.resample(fr) + res.resample(None):
                for pkt in a.encode(f):
                    c.mux(pkt)
            for pkt in a.encode(None):
                c.mux(pkt)
    return buf.getvalue()


def seeds_gltf() -> dict[str, bytes]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in (("jaw", {}), ("skinned", {"skin": True}), ("quantized", {"quantized": True}),
                         ("sparse", {"sparse": True})):
            path = pathlib.Path(tmp) / f"{name}.glb"
            _tiny_avatar(path, **kw)
            out[name + "_glb"] = b"\x00" + path.read_bytes()
        import pygltflib

        g = pygltflib.GLTF2().load(str(pathlib.Path(tmp) / "skinned.glb"))
        g.convert_buffers(pygltflib.BufferFormat.DATAURI)
        out["skinned_gltf"] = b"\x01" + g.gltf_to_json().encode()
    for p in _shared("avatars/*.glb"):
        out["shared_" + p.stem] = b"\x00" + p.read_bytes()[:HEAD]
    return out


def _tiny_avatar(path: pathlib.Path, skin: bool = False, quantized: bool = False, sparse: bool = False) -> None:
    """One triangle with a jawOpen morph target; optionally skinned to a Head/Neck chain, with int16
    normalized positions (KHR_mesh_quantization) or a sparse morph accessor."""
    import pygltflib as g

    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    delta = np.array([[0, 0, 0.1]] * 3, np.float32)
    parts, views, accs = [], [], []

    def add(arr: np.ndarray, ctype: int, typ: str, normalized: bool = False, target: int | None = None) -> int:
        off = sum(len(p) for p in parts)
        data = arr.tobytes()
        parts.append(data + b"\x00" * (-len(data) % 4))
        views.append(g.BufferView(buffer=0, byteOffset=off, byteLength=len(data), target=target))
        accs.append(g.Accessor(bufferView=len(views) - 1, componentType=ctype, count=len(arr), type=typ,
                               normalized=normalized or None,
                               max=arr.max(0).tolist() if typ == g.VEC3 else None,
                               min=arr.min(0).tolist() if typ == g.VEC3 else None))
        return len(accs) - 1

    if quantized:
        p_acc = add((pos * 32767).astype(np.int16).repeat(1, 0), g.SHORT, g.VEC3, normalized=True)
    else:
        p_acc = add(pos, g.FLOAT, g.VEC3)
    idx = add(np.array([0, 1, 2], np.uint16), g.UNSIGNED_SHORT, g.SCALAR)
    if sparse:
        i_view = add(np.array([1, 2], np.uint16), g.UNSIGNED_SHORT, g.SCALAR)
        v_view = add(delta[:2], g.FLOAT, g.VEC3)
        accs.append(g.Accessor(componentType=g.FLOAT, count=3, type=g.VEC3, max=[0, 0, 0.1], min=[0, 0, 0],
                               sparse=g.Sparse(count=2, indices=g.AccessorSparseIndices(
                                   bufferView=accs[i_view].bufferView, componentType=g.UNSIGNED_SHORT),
                                   values=g.AccessorSparseValues(bufferView=accs[v_view].bufferView))))
        d_acc = len(accs) - 1
    else:
        d_acc = add(delta, g.FLOAT, g.VEC3)
    attrs = g.Attributes(POSITION=p_acc)
    nodes = [g.Node(mesh=0, name="Face")]
    skins = []
    if skin:
        attrs.JOINTS_0 = add(np.array([[0, 1, 0, 0]] * 3, np.uint8), g.UNSIGNED_BYTE, g.VEC4)
        attrs.WEIGHTS_0 = add(np.array([[0.5, 0.5, 0, 0]] * 3, np.float32), g.FLOAT, g.VEC4)
        ibm = add(np.stack([np.eye(4, dtype=np.float32)] * 2), g.FLOAT, g.MAT4)
        nodes = [g.Node(mesh=0, name="Face", skin=0), g.Node(name="Neck", children=[2], translation=[0, 1, 0]),
                 g.Node(name="Head", translation=[0, 0.1, 0], rotation=[0.0, 0.0, 0.0, 1.0])]
        skins = [g.Skin(joints=[1, 2], inverseBindMatrices=ibm)]
    blob = b"".join(parts)
    gltf = g.GLTF2(
        scene=0, scenes=[g.Scene(nodes=[0] + ([1] if skin else []))], nodes=nodes, skins=skins,
        meshes=[g.Mesh(name="Face", extras={"targetNames": ["jawOpen"]},
                       primitives=[g.Primitive(attributes=attrs, indices=idx, targets=[{"POSITION": d_acc}])])],
        accessors=accs, bufferViews=views, buffers=[g.Buffer(byteLength=len(blob))],
        extensionsUsed=["KHR_mesh_quantization"] if quantized else [],
        extensionsRequired=["KHR_mesh_quantization"] if quantized else [])
    gltf.set_binary_blob(blob)
    gltf.save_binary(str(path))


def seeds_checkpoint() -> dict[str, bytes]:
    from safetensors.numpy import save

    out = {}
    rng = np.random.default_rng(2)
    lora = {"blocks.0.self_attn.q.lora_A.weight": rng.standard_normal((2, 8)).astype(np.float16),
            "blocks.0.self_attn.q.lora_B.weight": rng.standard_normal((8, 2)).astype(np.float16),
            "base_model.model.blocks.1.ffn.0.lora_A.default.weight": rng.standard_normal((2, 8)).astype(np.float32),
            "base_model.model.blocks.1.ffn.0.lora_B.default.weight": rng.standard_normal((16, 2)).astype(np.float32),
            "alpha": np.array(4.0, np.float32)}
    out["lora"] = b"\x00" + save(lora)
    out["lora_bf16_meta"] = b"\x00" + save({"x.lora_A.weight": np.zeros((1, 2), np.float32)},
                                           metadata={"format": "pt"})
    index = {"metadata": {"total_size": 64}, "weight_map": {"patch_embedding.bias": "shard-1.safetensors",
                                                             "head.modulation": "shard-2.safetensors"}}
    out["index"] = b"\x01" + json.dumps(index).encode()
    shard = save({"patch_embedding.bias": np.zeros(4, np.float32), "head.modulation": np.zeros((1, 2, 4), np.float32)})
    out["dit_shard"] = b"\x02" + shard
    out["dit_shard_f16"] = b"\x02" + save({"patch_embedding.bias": np.zeros(4, np.float16),
                                           "head.modulation": np.ones((1, 2, 4), np.int8)})
    return out


def seeds_learned_model() -> dict[str, bytes]:
    from engine.expression.learned_runtime import ModelConfig, save_pretrained

    out = {}
    cfg = ModelConfig(n_mels=4, channels=4, kernel=2, n_conv=1, hidden=3, delay=1, n_visemes=15)
    rng = np.random.default_rng(3)
    sd = {"mean": np.zeros(4, np.float32), "std": np.ones(4, np.float32),
          "convs.0.conv.weight": rng.standard_normal((4, 4, 2)).astype(np.float32),
          "convs.0.conv.bias": np.zeros(4, np.float32),
          "gru.weight_ih_l0": rng.standard_normal((9, 4)).astype(np.float32), "gru.bias_ih_l0": np.zeros(9, np.float32),
          "gru.weight_hh_l0": rng.standard_normal((9, 3)).astype(np.float32), "gru.bias_hh_l0": np.zeros(9, np.float32),
          "head.weight": rng.standard_normal((16, 7)).astype(np.float32), "head.bias": np.zeros(16, np.float32)}
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(tmp, cfg, sd)
        conf = (pathlib.Path(tmp) / "config.json").read_bytes()
        npz = (pathlib.Path(tmp) / "model.npz").read_bytes()
    out["tiny"] = struct.pack("<H", len(conf)) + conf + npz
    real = ROOT / "engine" / "expression" / "weights" / "learned-v2" / "config.json"
    if real.is_file():
        conf = real.read_bytes()[:HEAD]
        out["real_config_tiny_npz"] = struct.pack("<H", len(conf)) + conf + npz
    return out


def seeds_transcript() -> dict[str, bytes]:
    out = {"hello": "Hello world, it's 2026 - the year/the day.".encode(),
           "numbers": "Call 555-0199 at 10:30; 1000000 and 007.".encode(),
           "unicode": "Café naïve — Ünïcödé, 東京, Привет, ﬁ ligature’s".encode(),
           "odd": "don't can't rock'n'roll O'Neil x-ray 3D 1st".encode()}
    for p in _shared("audio/*.txt"):
        out["shared_" + p.stem] = p.read_bytes()[:HEAD]
    line = ROOT / "examples" / "line.txt"
    if line.is_file():
        out["line"] = line.read_bytes()[:HEAD]
    return out


TARGETS = {name[len("seeds_"):]: fn for name, fn in globals().items() if name.startswith("seeds_")}


def cache_dir(name: str) -> pathlib.Path:
    base = os.environ.get("AVATAR_BRIDGE_FUZZ_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                      "avatar-bridge", "fuzz")
    return pathlib.Path(base) / name


def build(name: str, out: str | os.PathLike | None = None) -> pathlib.Path:
    """Write the seeds of target `name` (generated + committed) into `out` (default: its cache dir)."""
    if name not in TARGETS:
        raise SystemExit(f"unknown fuzz target {name!r}; known: {', '.join(sorted(TARGETS))}")
    d = pathlib.Path(out) if out else cache_dir(name)
    d.mkdir(parents=True, exist_ok=True)
    seeds = TARGETS[name]()
    committed = SEEDS / name
    if committed.is_dir():
        seeds.update({f"committed_{p.name}": p.read_bytes() for p in sorted(committed.iterdir()) if p.is_file()})
    for key, data in seeds.items():
        digest = hashlib.sha1(data).hexdigest()[:12]
        (d / f"seed_{key}_{digest}").write_bytes(data)
    return d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="*", help=f"default: all ({', '.join(sorted(TARGETS))})")
    ap.add_argument("--out", help="directory (one target) or parent directory (several)")
    args = ap.parse_args()
    names = args.targets or sorted(TARGETS)
    if not SHARED.is_dir():
        print(f"make_corpus: {SHARED} is missing; seeds from generated and committed files only", file=sys.stderr)
    for name in names:
        out = (args.out if len(names) == 1 else os.path.join(args.out, name)) if args.out else None
        d = build(name, out)
        print(f"{name}: {d} ({len(list(d.iterdir()))} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

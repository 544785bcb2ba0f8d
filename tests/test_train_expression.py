"""The learned-v1 training pipeline: espeak-ng phone events, labels, augmentation, a few training steps."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from engine.expression.base import Style
from engine.expression.learned_model import HOP, SAMPLE_RATE, ModelConfig
from engine.expression.learned_net import ExpressionNet

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
    from engine.expression.learned import LearnedExpressionEngine
    from engine.expression.train.train import train

    cfg = ModelConfig(channels=16, hidden=16)
    metrics = train(str(tmp_path), utterances=12, steps=3, batch=4, crop=120, threads=1, cfg=cfg, log=None)
    assert 0.0 <= metrics["frame_acc"] <= 1.0
    conf = json.loads((tmp_path / "config.json").read_text())
    assert conf["hidden"] == 16 and conf["training"]["steps"] == 3
    net = ExpressionNet.from_pretrained(tmp_path)
    assert net.cfg.hidden == 16
    eng = LearnedExpressionEngine(tmp_path)
    s = eng.open(30, Style())
    f = s.push(np.zeros(8000, np.float32))
    f2 = s.finish()
    assert len(f) + len(f2) == 15


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "bridge_server.cli", "--help"], capture_output=True, text=True)
    assert "train-expression" in out.stdout and "eval-expression" in out.stdout
    out = subprocess.run([sys.executable, "-m", "bridge_server.cli", "eval-expression", "/nonexistent-dir"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "is not a directory of videos" in out.stderr

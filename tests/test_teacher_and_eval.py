"""learned-v2's data path and the evaluation's bookkeeping: the pocketsphinx teacher's labels, the real-speech
manifest reader, manifest clips for eval-expression (paired audio, missing files), and the A/V sync verdict."""
from __future__ import annotations

import json
import re

import numpy as np

from engine.expression import evaluate as ev
from engine.expression.learned_runtime import HOP, ModelConfig
from engine.expression.train.real import build_real, load_manifest
from engine.expression.train.teacher import PhoneTeacher, frame_labels
from engine.expression.visemes import VISEME_INDEX

from conftest import shared_file

VOWELS = {VISEME_INDEX[v] for v in ("aa", "E", "I", "O", "U", "RR")}


def test_teacher_labels_real_speech_where_the_hand_labels_are():
    # Evaluation use only: the hand-checked phone tier of a clip no model was trained on.
    x = ev.load_audio(shared_file("align/praatio_bobby.wav"))
    labels = frame_labels(PhoneTeacher().phones(x), -(-x.size // HOP))
    tier = ev.parse_textgrid(shared_file("align/praatio_bobby_phones.TextGrid"))["phone"]
    t = np.arange(labels.size) * HOP / 16000
    vowel = np.zeros(labels.size, bool)
    closed = np.zeros(labels.size, bool)
    for a, b, p in tier:
        m = (t >= a) & (t < b)
        vowel |= m & bool(ev.OPEN_VOWELS.match(p.strip()) or re.match(r"^(IY|IH)\d?$", p.strip()))
        closed |= m & bool(re.match(r"^(B|P|M)\d?$", p.strip()))
    assert vowel.sum() > 20 and closed.sum() > 5
    assert np.isin(labels[vowel], list(VOWELS)).mean() > 0.6  # a vowel where a person heard one
    assert np.isin(labels[closed], list(VOWELS)).mean() < 0.5  # and mostly not where the lips closed


def _manifest(tmp_path, rows):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(rows))
    return p


def test_real_speech_manifest_reads_training_speech_only(tmp_path):
    (tmp_path / "a.wav").write_bytes(shared_file("align/praatio_mary.wav").read_bytes())
    rows = [{"id": "a", "kind": "speech", "use": "train", "local": "a.wav", "language": "en", "speaker": "s1",
             "transcript": "mary rolled the barrel"},
            {"id": "b", "kind": "speech", "use": "eval", "local": "a.wav", "speaker": "s2"},
            {"id": "c", "kind": "av", "use": "eval", "local": "a.wav"},
            {"id": "d", "kind": "speech", "use": "train", "local": "missing.wav"}]
    clips = load_manifest(_manifest(tmp_path, rows), tmp_path)
    assert [c.id for c in clips] == ["a"]
    ex = build_real(clips, ModelConfig(), copies=2, seed=3, log=None)
    assert len(ex) == 2 and all(e.feats.shape[0] == e.labels.shape[0] for e in ex)
    assert all(np.isin(e.labels, list(VOWELS)).any() for e in ex)  # aligned text gives vowels


def test_eval_manifest_clips_take_paired_audio_and_skip_missing_files(tmp_path):
    for n in ("v.mp4", "s.wav"):
        (tmp_path / n).write_bytes(b"x")
    rows = [{"id": "v", "kind": "av", "local": "v.mp4", "language": "en", "speaker": "p1", "paired_audio": "s"},
            {"id": "s", "kind": "speech", "local": "s.wav", "transcript": "hello there"},
            {"id": "w", "kind": "av", "local": "gone.mp4"},
            {"id": "x", "kind": "av", "local": "v.mp4", "paired_audio": "nope"}]
    clips = ev.clips_in_manifest(_manifest(tmp_path, rows), tmp_path)
    assert [(c.name, c.audio.name if c.audio else None, c.transcript) for c in clips] == [
        ("v.mp4", "s.wav", "hello there"), ("v.mp4", None, None)]


def _truth_from(envelope: np.ndarray, fps: float, lag_s: float) -> ev.FaceTruth:
    """A 'face' whose lip aperture follows the audio envelope lag_s later (video at fps)."""
    times = np.arange(0, envelope.size / ev.PRED_FPS, 1 / fps)
    ap = np.interp(times - lag_s, np.arange(envelope.size) / ev.PRED_FPS, envelope)
    return ev.FaceTruth(fps, times, ap, ap, np.ones(times.size, bool))


def test_av_sync_verdicts():
    rng = np.random.default_rng(0)
    words = np.repeat(rng.random(40) > 0.5, 8000)  # 20 s of on/off 'syllables'
    x = (words * rng.standard_normal(words.size) * 0.3).astype(np.float32)
    env = ev.rms_flap(x, ev.PRED_FPS, -(-x.size * ev.PRED_FPS // 16000))
    assert ev.av_sync(_truth_from(env, 25, 0.04), x)[1] == "yes"
    off, verdict = ev.av_sync(_truth_from(env, 25, 0.6), x)
    assert verdict == "no" and abs(off - 0.6) < 0.05


def test_cli_refuses_bad_real_speech_and_manifest_arguments(tmp_path):
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bridge_server.cli", *args], capture_output=True, text=True,
                              timeout=120)

    out = cli("train-expression", "--stage", "network", "--real-speech", str(tmp_path / "none.json"),
              "--out", str(tmp_path / "w"))
    assert out.returncode == 2 and "--real-speech needs a manifest file and --media-root" in out.stderr
    manifest = _manifest(tmp_path, [{"id": "a", "kind": "speech", "use": "train", "local": "missing.wav"}])
    out = cli("train-expression", "--stage", "network", "--real-speech", str(manifest), "--media-root", str(tmp_path),
              "--out", str(tmp_path / "w"))
    assert out.returncode == 2 and "no training speech" in out.stderr and "gather_media.py" in out.stderr
    out = cli("train-expression", "--stage", "network", "--real-speech", str(manifest), "--media-root", str(tmp_path),
              "--real-share", "0", "--out", str(tmp_path / "w"))
    assert out.returncode == 2 and "--real-share must be in (0, 1]" in out.stderr
    out = cli("eval-expression", str(tmp_path), "--manifest", str(tmp_path / "nope.json"))
    assert out.returncode == 2 and "--manifest" in out.stderr and "not found" in out.stderr
    (tmp_path / "bad.json").write_text("{not json")
    out = cli("eval-expression", str(tmp_path), "--manifest", str(tmp_path / "bad.json"), "--align")
    assert out.returncode == 2 and "bad.json" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "w").exists()  # nothing was trained or written
    out = cli("train-expression", "--stage", "network", "--real-speech", str(tmp_path / "bad.json"), "--media-root",
              str(tmp_path), "--out", str(tmp_path / "w"))
    assert out.returncode == 2 and "bad.json cannot be read as JSON" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "shape.json").write_text('{"id": "a"}')
    out = cli("eval-expression", str(tmp_path), "--manifest", str(tmp_path / "shape.json"), "--align")
    assert out.returncode == 2 and "must be a JSON list of objects" in out.stderr

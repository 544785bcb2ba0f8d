"""The Piper backend (engine/tts/piper.py) on a real ONNX model in Piper's exact layout, through a real server.

The voice is a tiny model made here by tests/piper_tiny.py (torch.onnx.export; espeak-ng snippets as its
"decoder"), NOT a real Piper voice: no Piper voice can be downloaded on CI. Everything else is real: the
.onnx.json format, espeak-ng phonemisation, the id interleaving, onnxruntime, the in-memory duration-tensor
patch, the Speak RPC on loopback, `avatar-bridge models fetch piper:<voice>` from an HTTP mirror.
"""
from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading

import grpc
import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="pip install 'avatar-bridge[piper]' (onnxruntime)")
pytest.importorskip("onnx", reason="pip install 'avatar-bridge[piper]' (onnx)")
pytest.importorskip("torch", reason="the tiny test voice is exported with torch (the test extra)")

from avatarbridge.v1 import bridge_pb2 as pb  # noqa: E402
from bridge_server.client import speak_start  # noqa: E402
from engine.expression.phones.timing import Phone, mouth_track  # noqa: E402
from engine.expression.visemes import VISEME_INDEX  # noqa: E402
from engine.tts.piper import PiperBackend  # noqa: E402
from engine.worker.speak_session import _pad_to_rest  # noqa: E402
from tests import piper_tiny  # noqa: E402
from tests.conftest import ROOT, Server  # noqa: E402
from tests.test_speak import _speak_error, check_one_clock, speak  # noqa: E402

TINY = "en_US-tiny-medium"  # has the Ceil duration tensor: exact phone timings
NO_CEIL = "en_US-tinyround-medium"  # rounds without Ceil: phone timings by forced alignment
MULTI = "en_US-tinymulti-medium"  # takes Piper's sid input (3 speakers)
PP = VISEME_INDEX["PP"]


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    d = tmp_path_factory.mktemp("piper")
    piper_tiny.build(d, TINY)
    piper_tiny.build(d, NO_CEIL, ceil=False)
    piper_tiny.build(d, MULTI, speakers=3)
    # Broken voices, each as a user could leave them.
    (d / "en_US-corrupt-medium.onnx").write_bytes(b"\x08\x07not an onnx model" * 50)
    shutil.copy(d / f"{TINY}.onnx.json", d / "en_US-corrupt-medium.onnx.json")
    shutil.copy(d / f"{TINY}.onnx", d / "en_US-nojson-medium.onnx")
    shutil.copy(d / f"{TINY}.onnx", d / "en_US-badjson-medium.onnx")
    (d / "en_US-badjson-medium.onnx.json").write_text('{"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"}}')
    return d


@pytest.fixture(scope="module")
def piper_server(voices, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("piper-server"), workers=1, extra=["--piper-voices", str(voices)])
    yield srv
    srv.stop()


def _local(voices, name):
    b = PiperBackend(voices)
    return b, next(v for v in b.voices() if v.id == f"piper:{name}")


def test_tiny_piper_voice_speaks_through_the_speak_rpc(piper_server, voices):
    text = "Bob bought a big blue ball."
    res = speak(piper_server, text, voice=f"piper:{TINY}", fps=60)
    assert res.header.tts_engine == "piper" and res.header.sample_rate == piper_tiny.SAMPLE_RATE
    assert res.header.language == "en-us" and res.status.sentences == 1 and not res.status.warnings
    check_one_clock(res)
    # The server's audio is the model's (deterministic), padded to rest as every voice's is.
    b, v = _local(voices, TINY)
    syn = b.synth(text, v, 1.0)
    audio, lead = _pad_to_rest(syn.audio, syn.sample_rate, syn.phones, first=True)
    want_pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    assert np.array_equal(res.pcm(), want_pcm)
    # Phones from the model's own durations: they tile the audio, and the mouth follows them exactly.
    assert syn.phones[0].start_s == 0 and syn.phones[-1].end_s == pytest.approx(syn.audio.size / syn.sample_rate)
    assert all(a.end_s == b_.start_s for a, b_ in zip(syn.phones, syn.phones[1:]))
    labels = [p.label for p in syn.phones if p.label]
    assert labels[:3] == ["b", "ɑː", "b"] and labels.count("b") == 6  # Bob bought a big blue ball
    track = mouth_track([Phone(p.start_s + lead, p.end_s + lead, p.label) for p in syn.phones])
    frames = res.animation.frames
    want, _ = track.at(np.array([f.time for f in frames]))
    got = np.array([list(f.visemes) for f in frames])
    closing = want[:, PP] >= 0.999
    assert closing.sum() >= 5 and np.median(got[closing, PP]) > 0.99
    jaw = np.array([f.weights[17] for f in frames])
    assert jaw.max() > 0.2 and jaw[0] < 0.02 and jaw[-1] < 0.02


def test_phonemes_and_ids_follow_pipers_layout(voices):
    """espeak-ng IPA with each clause's punctuation (Piper trains on it), NFD codepoints, and ids as Piper
    lays them out: ^ _ (phoneme _)* $."""
    import json

    from engine.tts.piper import _phoneme_ids, phonemize

    ph = phonemize("Hello there, how are you? Fine.", "en-us")
    text = "".join(ph)
    assert text.startswith("həlˈoʊ ðˈɛɹ, h") and "juː?" in text and text.endswith("fˈaɪn.")
    id_map = json.loads((voices / f"{TINY}.onnx.json").read_text(encoding="utf-8"))["phoneme_id_map"]
    ids, owner, unknown = _phoneme_ids(ph, id_map)
    assert not unknown
    want = [1, 0] + [x for p in ph for x in (id_map[p][0], 0)] + [2]
    assert ids == want and owner[:2] == [-1, -1] and owner[-1] == -1 and owner[2:4] == [0, 0]
    _, _, unknown = _phoneme_ids(list("hæ") + ["ʘ"], id_map)  # a click: not in this voice's map
    assert unknown == {"ʘ"}


def test_speaking_rate_is_length_scale(voices):
    """rate 1.5 -> length_scale / 1.5: the model itself makes shorter audio, and the phones still tile it."""
    b, v = _local(voices, TINY)
    slow, fast = b.synth("Hello there, how are you today?", v, 1.0), b.synth("Hello there, how are you today?", v, 1.5)
    assert fast.audio.size / slow.audio.size == pytest.approx(1 / 1.5, abs=0.06)
    assert [p.label for p in fast.phones] == [p.label for p in slow.phones]
    assert fast.phones[-1].end_s == pytest.approx(fast.audio.size / fast.sample_rate)
    d_slow = np.array([p.end_s - p.start_s for p in slow.phones])
    d_fast = np.array([p.end_s - p.start_s for p in fast.phones])
    assert np.median(d_fast / d_slow) == pytest.approx(1 / 1.5, abs=0.1)


def test_a_multi_speaker_voice_gets_speaker_0(voices):
    b, v = _local(voices, MULTI)
    _, one = _local(voices, TINY)
    multi, single = b.synth("Big blue ball.", v, 1.0), PiperBackend(voices).synth("Big blue ball.", one, 1.0)
    assert "sid" in b._loaded[MULTI].input_names
    # Speaker 0: not scaled down (speaker 1 would be half as loud). Each build takes its own espeak-ng
    # snippets, which differ by a few samples, so the two models are compared by level, not sample by sample.
    assert multi.audio.size == single.audio.size
    assert np.sqrt(np.mean(multi.audio ** 2)) / np.sqrt(np.mean(single.audio ** 2)) == pytest.approx(1.0, abs=0.1)
    assert [p.label for p in multi.phones] == [p.label for p in single.phones]


def test_a_graph_without_durations_is_force_aligned(piper_server):
    """No Ceil tensor: the phones come from aligning the audio to the text (US English). The tiny model's
    tiled snippets are poor speech: one sentence aligns, another does not (-> INTERNAL, named)."""
    res = speak(piper_server, "Hello there, how are you today?", voice=f"piper:{NO_CEIL}", fps=30)
    check_one_clock(res)
    assert any("forced alignment" in w for w in res.status.warnings)
    jaw = np.array([f.weights[17] for f in res.animation.frames])
    assert jaw.max() > 0.2
    err = _speak_error(piper_server, speak_start("Bob bought a big blue ball.", voice=f"piper:{NO_CEIL}"))
    assert err.code() == grpc.StatusCode.INTERNAL and "could not be aligned to its text" in err.details()


@pytest.mark.parametrize("name, words", [
    ("en_US-corrupt-medium", ["not a loadable ONNX model", "models fetch piper:en_US-corrupt-medium"]),
    ("en_US-nojson-medium", ["en_US-nojson-medium.onnx.json missing", "models fetch piper:en_US-nojson-medium",
                             "piper_voices"]),
    ("en_US-badjson-medium", ["has no 'phoneme_id_map'", "models fetch piper:en_US-badjson-medium"]),
    ("en_US-lessac-medium", ["en_US-lessac-medium.onnx and en_US-lessac-medium.onnx.json missing",
                             "avatar-bridge models fetch piper:en_US-lessac-medium"]),
])
def test_broken_or_absent_voice_files_are_failed_precondition(piper_server, name, words):
    err = _speak_error(piper_server, speak_start("Hello.", voice=f"piper:{name}"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
    for w in words:
        assert w in err.details(), err.details()
    caps = piper_server.stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=10)
    listed = {v.id: v for v in caps.voices}
    assert not listed[f"piper:{TINY}"].missing
    if name != "en_US-corrupt-medium":  # a corrupt model is found when it is loaded, not when listed
        assert words[0] in listed[f"piper:{name}"].missing
    # The server keeps serving.
    assert speak(piper_server, "Still here.", voice=f"piper:{TINY}").status.sentences == 1


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def test_models_fetch_piper_voice_from_a_mirror(voices, tmp_path):
    """`models fetch piper:<voice>` takes the rhasspy/piper-voices layout, records sha256s, verify checks them;
    then `speak --voice piper:<voice>` works against a server given that folder."""
    www = tmp_path / "www"
    for name, cfg in ((TINY, None), ("en_US-bad-medium", "{not json")):
        folder = www / "en" / "en_US" / name.split("-")[1] / "medium"
        folder.mkdir(parents=True)
        shutil.copy(voices / f"{TINY}.onnx", folder / f"{name}.onnx")
        if cfg is None:
            shutil.copy(voices / f"{TINY}.onnx.json", folder / f"{name}.onnx.json")
        else:
            (folder / f"{name}.onnx.json").write_text(cfg)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a, **kw: _Quiet(*a, directory=str(www), **kw))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    dest = tmp_path / "voices"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bridge_server.cli", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    try:
        r = cli("models", "verify", f"piper:{TINY}", "--dest", str(dest))
        assert r.returncode == 1 and f"run `avatar-bridge models fetch piper:{TINY}`" in r.stdout
        r = cli("models", "fetch", f"piper:{TINY}", "--dest", str(dest), "--url", base)
        assert r.returncode == 0 and "ok" in r.stdout, r.stderr
        assert (dest / f"{TINY}.onnx").read_bytes() == (voices / f"{TINY}.onnx").read_bytes()
        r = cli("models", "verify", f"piper:{TINY}", "--dest", str(dest))
        assert r.returncode == 0 and "ok" in r.stdout
        r = cli("models", "fetch", "piper:en_US-bad-medium", "--dest", str(dest), "--url", base)
        assert r.returncode == 1 and "is not JSON" in r.stderr
        assert not list(dest.glob("en_US-bad-medium*")) and not list(dest.glob("*.json.*"))  # nothing half-done
        r = cli("models", "fetch", "piper:lessac", "--dest", str(dest))
        assert r.returncode == 2 and "not a Piper voice name" in r.stderr and "\nTraceback" not in r.stderr
        # speak through a server that was given the folder
        srv = Server(tmp_path, workers=1, extra=["--piper-voices", str(dest)])
        try:
            wav, out = tmp_path / "s.wav", tmp_path / "s.json"
            r = cli("speak", "A fetched voice.", "--voice", f"piper:{TINY}", "--server", srv.target,
                    "--audio-out", str(wav), "--out", str(out))
            assert r.returncode == 0 and f"piper:{TINY}" in r.stdout and wav.stat().st_size > 10000, r.stderr
        finally:
            srv.stop()
        (dest / f"{TINY}.onnx").write_bytes(b"changed")
        r = cli("models", "verify", f"piper:{TINY}", "--dest", str(dest))
        assert r.returncode == 1 and "BAD" in r.stdout and "differs from the sha256" in r.stdout
    finally:
        httpd.shutdown()

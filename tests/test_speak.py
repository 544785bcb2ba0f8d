"""Speak (text -> speech + frames on one clock), external phone timings on AnimateClip, the speak CLI:
through a real server on loopback, with the real espeak-ng and Festival voices (docs/speak.md)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import soundfile as sf

from avatarbridge.v1 import bridge_pb2 as pb
from bridge_server.client import BridgeClient, SpeechResult, speak_start
from engine.expression.phones.timing import Phone, mouth_track
from engine.expression.visemes import VISEME_INDEX
from engine.tts.espeak import EspeakBackend
from engine.tts.registry import load_backends
from engine.worker.speak_session import _pad_to_rest
from tests.conftest import ROOT

PP = VISEME_INDEX["PP"]
# CI installs these (.ci/run); elsewhere the Festival tests skip, naming the packages.
needs_festival = pytest.mark.skipif(
    not os.path.isdir("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts"),
    reason="Festival's HTS voice is not installed: apt-get install festival festvox-us-slt-hts")
JAW = 17  # jawOpen
SAY = {  # language -> (text, the voice the server picks by default)
    "en": ("Bob bought a big blue ball for the baby.", "festival:us-slt-hts"),
    "en-GB": ("Please bring me a cup of warm milk.", "espeak:en"),
    "zh-CN": ("你好，你今天怎么样？我想喝一杯茶。", "espeak:cmn"),
    "ja": ("こんにちは、おげんきですか。", "espeak:ja"),
    "de": ("Guten Morgen, wie geht es dir?", "espeak:de"),
    "fr": ("Bonjour, comment allez-vous?", "espeak:fr"),
    "es": ("Hola, ¿cómo estás? Me gustaría un vaso de agua.", "espeak:es"),
}


def speak(server, text: str, timeout: float = 60, **kw) -> SpeechResult:
    return BridgeClient(server.target).speak(text, timeout=timeout, **kw)


def check_one_clock(res: SpeechResult) -> None:
    """Audio chunks back to back; frame k at round(k sr / fps), exactly ceil(samples fps / sr) of them."""
    sr, fps = res.header.sample_rate, res.header.expression.fps
    pos = 0
    for a in res.audio:
        assert a.sample_index == pos and a.time == pytest.approx(pos / sr)
        pos += len(a.pcm16) // 2
    assert res.status.audio_seconds == pytest.approx(pos / sr, abs=1e-6)
    frames = res.animation.frames
    assert [f.index for f in frames] == list(range(-(-pos * fps // sr)))
    for f in frames[::7]:
        assert f.sample_index == (2 * f.index * sr + fps) // (2 * fps)
        assert f.time == pytest.approx(f.sample_index / sr)
    assert res.status.frames_sent == len(frames)


@pytest.mark.parametrize("language, text, voice", [
    pytest.param(k, t, v, id=k, marks=[needs_festival] if v.startswith("festival") else []) for k, (t, v) in SAY.items()])
def test_speak_each_language_on_one_clock(server, language, text, voice):
    res = speak(server, text, language=language, fps=60)
    assert res.header.voice == voice and res.header.expression.sample_rate == res.header.sample_rate
    check_one_clock(res)
    jaw = np.array([f.weights[JAW] for f in res.animation.frames])
    assert jaw.max() > 0.2 and jaw[0] < 0.02 and jaw[-1] < 0.02  # speaks, starts and ends at rest
    assert list(res.header.expression.viseme_names)[PP] == "PP"


def test_mouth_follows_the_tts_phones_exactly(server):
    """The frames' lip closures are where espeak-ng's own phone events put /b/ and /m/ (the same synthesis run
    here: espeak-ng is deterministic)."""
    text = "Bob bought a big blue ball."
    res = speak(server, text, voice="espeak:en-us", fps=60)
    es = EspeakBackend()
    # libespeak-ng is not bit-deterministic: now and then one phone of this sentence comes out ~190 samples
    # shorter (measured: 1 synthesis in ~10), shifting every later phone by ~9 ms. Synthesise here until the
    # length matches the server's (same cluster, within a few samples), as the server's phones then are ours.
    for _ in range(60):
        syn = es.synth(text, next(v for v in es.voices() if v.id == "espeak:en-us"), 1.0)
        audio, lead = _pad_to_rest(syn.audio, syn.sample_rate, syn.phones, first=True)
        if abs(res.pcm().size - audio.size) < 0.002 * audio.size:
            break
    assert abs(res.pcm().size - audio.size) < 0.002 * audio.size
    track = mouth_track([Phone(p.start_s + lead, p.end_s + lead, p.label) for p in syn.phones])
    frames = res.animation.frames
    t = np.array([f.time for f in frames])
    want, _ = track.at(t)
    got = np.array([list(f.visemes) for f in frames])
    closing = want[:, PP] >= 0.999  # frames where the phones close the lips
    assert closing.sum() >= 5 and np.median(got[closing, PP]) > 0.99 and got[closing, PP].min() > 0.8
    speech = want[:, VISEME_INDEX["sil"]] < 0.5  # where the mouth is not gated to rest, it is the phones' mouth
    assert np.abs(got[speech] - want[speech]).mean() < 0.02


def test_long_text_streams_sentence_by_sentence(server):
    text = " ".join(f"This is sentence number {i} of a longer text." for i in range(1, 7))
    began = time.perf_counter()
    kinds = []
    for r in server.stub.Speak(iter([speak_start(text, voice="espeak:en-us")]), timeout=60):
        kinds.append(r.WhichOneof("msg"))
    assert kinds[0] == "header" and kinds[-1] == "status"
    assert kinds.count("audio") == 6
    # Each sentence's audio leaves before the next one is synthesised: audio and frames alternate.
    body = [k for k in kinds[1:-1]]
    assert body[0] == "audio" and all(body[i] != body[i + 1] or body[i] == "frames" for i in range(len(body) - 1))
    assert time.perf_counter() - began < 60


def test_ssml_subset_and_bad_ssml(server):
    res = speak(server, '<speak>Hello.<break time="700ms"/>Goodbye.</speak>', voice="espeak:en-us")
    check_one_clock(res)
    assert res.status.sentences == 2 and not res.status.warnings
    x = res.pcm().astype(np.float32)
    sr = res.header.sample_rate
    quiet = np.convolve(np.abs(x) < 30, np.ones(int(0.6 * sr)), "valid").max() >= int(0.6 * sr) - 1
    assert quiet  # the 700 ms break is in the audio
    bad = speak(server, "<speak>Hello <break time='1s'> there.</speak>", voice="espeak:en-us")
    assert any("does not parse" in w and "plain text" in w for w in bad.status.warnings)
    assert bad.status.sentences == 1


def test_ssml_prosody_rate_sentences_and_unsupported_elements(server):
    """<prosody rate> speeds its text up or down (times speaking_rate, clamped to 0.5..2 with a warning);
    <s>/<p> are sentences; an element outside the subset is read as plain text, and a warning names it."""
    from engine.tts.text import pieces

    same = "Bob bought a big blue ball."
    ssml = (f'<speak><p><s>{same}</s><prosody rate="x-fast">{same}</prosody>'
            f'<prosody rate="50%">{same}</prosody></p><emphasis level="strong">Now</emphasis></speak>')
    res = speak(server, ssml, voice="espeak:en-us")
    check_one_clock(res)
    assert res.status.sentences == 4
    sizes = [len(a.pcm16) // 2 for a in res.audio]
    sr = res.header.sample_rate
    lead = int(0.12 * sr)  # the first sentence's lead-in silence
    normal, fast, slow = sizes[0] - lead, sizes[1], sizes[2]
    assert fast < 0.8 * normal and slow > 1.5 * normal, sizes
    assert any("<emphasis> is not supported; its text was read as plain text" in w for w in res.status.warnings)
    clamped = speak(server, f'<speak><prosody rate="x-fast">{same}</prosody></speak>', voice="espeak:en-us",
                    speaking_rate=2.0)
    assert any("is 3, outside 0.5..2; 2 was used" in w for w in clamped.status.warnings), clamped.status.warnings
    ps, warnings = pieces('<speak><prosody rate="+20%" volume="loud">a</prosody><prosody rate="1.5">b</prosody>'
                          '<prosody rate="slow"><prosody rate="200%">c</prosody>d</prosody>e<prosody rate="zip">f'
                          '</prosody></speak>')
    assert [(p.text, p.rate) for p in ps] == [("a", 1.2), ("b", 1.5), ("c", 1.5), ("d", 0.75), ("e", 1.0), ("f", 1.0)]
    assert any("volume is not applied" in w for w in warnings) and any("rate='zip'" in w for w in warnings)


def test_barge_in_eases_the_face_to_rest(server):
    """A SpeakStop mid-utterance: synthesis stops, the frames from the stop ease to rest, the status says so."""
    # 300 sentences: even espeak-ng (~5 ms a sentence with its round trip) cannot finish before the stop lands.
    text = " ".join(f"Sentence {i} talks about many wonderful things." for i in range(300))
    stop_sent = threading.Event()
    requests_done = threading.Event()

    def requests():
        yield speak_start(text, voice="espeak:en-us", fps=30)
        stop_sent.wait(30)
        yield pb.SpeakRequest(stop=pb.SpeakStop(at_time=1.0))
        requests_done.wait(30)

    responses = []
    for r in server.stub.Speak(requests(), timeout=60):
        responses.append(r)
        if r.WhichOneof("msg") == "audio":
            stop_sent.set()
    requests_done.set()
    res = SpeechResult.collect(responses)
    assert res.status.stopped and res.status.audio_seconds == pytest.approx(1.0, abs=1e-3)
    assert res.status.sentences < 300
    frames = res.animation.frames
    assert [f.index for f in frames] == list(range(len(frames)))
    k0 = 30  # at_time 1.0 s at 30 fps
    ease = frames[k0:]
    assert len(ease) == 8  # 0.25 s
    assert max(ease[-1].weights) < 1e-6 and list(ease[-1].rotations[:4]) == pytest.approx([0, 0, 0, 1])
    assert ease[-1].visemes[VISEME_INDEX["sil"]] == pytest.approx(1.0)
    jaw = [f.weights[JAW] for f in frames[k0 - 1:]]
    assert all(b <= a + 1e-6 for a, b in zip(jaw, jaw[1:]))  # monotone to rest: no jump
    assert res.pcm().size == res.header.sample_rate  # audio cut at the stop


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@needs_festival
def test_cancel_mid_sentence_leaks_no_synthesis(fresh_server):
    """The client cancels after the first audio: the worker's CPU goes quiet at once (measured), the
    stream is counted CANCELLED and the worker serves the next call."""
    srv = fresh_server(workers=1)
    wpid = srv.worker_pids[0]
    text = " ".join(f"Sentence number {i} is long enough to take a while to say out loud." for i in range(150))
    call = srv.stub.Speak(iter([speak_start(text, voice="festival:us-slt-hts")]), timeout=120)
    for r in call:
        if r.WhichOneof("msg") == "audio":
            call.cancel()
            break
    time.sleep(1.0)  # a sentence in progress finishes (~0.1 s); nothing is queued behind it
    before = _cpu_s(wpid)
    time.sleep(2.0)
    used = _cpu_s(wpid) - before
    assert used < 0.1, f"the worker used {used:.2f} s of CPU in 2 s after the cancel"
    deadline = time.monotonic() + 5
    while srv.metric("avatar_bridge_live_streams", 'rpc="Speak"') != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert srv.metric("avatar_bridge_live_streams", 'rpc="Speak"') == 0
    assert srv.metric("avatar_bridge_streams_total", 'code="CANCELLED",rpc="Speak"') == 1
    res = speak(srv, "Still here.", voice="espeak:en-us")
    assert res.status.sentences == 1


# ------------------------------------------------------------------------------------------ bad input
def _speak_error(server, req: pb.SpeakRequest | list) -> grpc.RpcError:
    reqs = req if isinstance(req, list) else [req]
    with pytest.raises(grpc.RpcError) as e:
        list(server.stub.Speak(iter(reqs), timeout=30))
    return e.value


@pytest.mark.parametrize("kw, code, words", [
    (dict(text=""), "INVALID_ARGUMENT", ["start.text is empty"]),
    (dict(text="  \n "), "INVALID_ARGUMENT", ["start.text is empty"]),
    (dict(text="a" * 20001), "INVALID_ARGUMENT", ["start.text is 20001 bytes", "limit of 20000"]),
    (dict(text="bell\x07 here"), "INVALID_ARGUMENT", ["control character U+0007 at character 4"]),
    (dict(text="hi", voice="espeak:xx"), "INVALID_ARGUMENT", ["voice='espeak:xx'", "espeak:de", "festival:kal"]),
    (dict(text="hi", language="tlh"), "INVALID_ARGUMENT", ["language='tlh'", "cmn", "ja", "de", "fr", "es"]),
    (dict(text="hi", language="en US"), "INVALID_ARGUMENT", ["not a BCP-47 tag"]),
    (dict(text="hi", voice="espeak:de", language="fr"), "INVALID_ARGUMENT", ["speaks 'de'"]),
    (dict(text="hi", speaking_rate=5), "INVALID_ARGUMENT", ["start.speaking_rate=5", "0.5..2"]),
    (dict(text="hi", fps=24), "INVALID_ARGUMENT", ["start.fps=24"]),
    (dict(text="hi", style=pb.ExpressionStyle(intensity=3)), "INVALID_ARGUMENT", ["start.style.intensity=3"]),
])
def test_bad_speak_requests(server, kw, code, words):
    kw.setdefault("fps", 30)
    err = _speak_error(server, pb.SpeakRequest(start=pb.SpeakStart(**kw)))
    assert err.code().name == code
    for w in words:
        assert w in err.details(), err.details()


def test_stop_before_start_and_a_second_start(server):
    err = _speak_error(server, pb.SpeakRequest(stop=pb.SpeakStop()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "must be a SpeakStart, got stop" in err.details()
    long = " ".join(["One more sentence to say."] * 40)
    err = _speak_error(server, [speak_start(long, voice="espeak:en-us"), speak_start("again")])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "message #2 is start" in err.details()


PLUGIN = '''
from engine.tts.festival import FestivalBackend, VOICES

class LocalFestival(FestivalBackend):
    """A user's own Festival voice table: one real voice, one whose files were never installed."""
    name = "local"
    voice_table = {"slt": VOICES["us-slt-hts"],
                   "gone": ("voice_gone_hts", "us/gone_hts", "en-us", "festvox-gone-hts", 16000, "not installed")}
'''


@needs_festival
def test_plugin_backend_and_a_voice_with_missing_files(fresh_server, tmp_path, monkeypatch):
    (tmp_path / "my_tts_plugin.py").write_text(PLUGIN)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    srv = fresh_server(workers=1, extra=["--tts-plugins", "my_tts_plugin:LocalFestival"])
    caps = srv.stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=10)
    ids = {v.id: v for v in caps.voices}
    assert "local:slt" in ids and "festvox-gone-hts" in ids["local:gone"].missing
    res = speak(srv, "A plugged in voice.", voice="local:slt")
    assert res.header.tts_engine == "local" and res.header.sample_rate == 32000 and res.status.sentences == 1
    check_one_clock(res)
    err = _speak_error(srv, speak_start("hello", voice="local:gone"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "apt-get install festvox-gone-hts" in err.details() and "/us/gone_hts" in err.details()


def test_a_plugin_that_cannot_load_stops_start_up(tmp_path):
    from tests.conftest import Server

    with pytest.raises(RuntimeError) as e:
        Server(tmp_path, workers=1, extra=["--tts-plugins", "no_such_module:Backend"])
    assert "no_such_module:Backend" in str(e.value) and "cannot be loaded" in str(e.value)


# ------------------------------------------------------------------------------------------ external TTS
def _espeak_clip(tmp_path, text: str):
    es = EspeakBackend()
    syn = es.synth(text, next(v for v in es.voices() if v.id == "espeak:en-us"), 1.0)
    path = tmp_path / "tts.wav"
    sf.write(path, syn.audio, syn.sample_rate, subtype="PCM_16")
    return path.read_bytes(), syn


def test_animate_clip_with_external_phone_timings(server, tmp_path):
    data, syn = _espeak_clip(tmp_path, "Bob bought a big blue ball.")
    phones = [pb.PhoneTiming(phone=p.label, start=p.start_s, end=p.end_s) for p in syn.phones]
    client = BridgeClient(server.target)
    req = pb.AnimateClipRequest(audio_file=data, fps=60, phones=phones, stream_id="ext")
    from bridge_server.client import Animation
    with_phones = Animation.collect(server.stub.AnimateClip(req, timeout=60))
    plain = client.animate_clip(data, fps=60, stream_id="ext")
    assert any(w.startswith("phones used: ") for w in with_phones.status.warnings)
    t = np.array([f.time for f in with_phones.frames])
    want, _ = mouth_track(syn.phones).at(t)
    at = want[:, PP] >= 0.999  # frames where the phones close the lips
    pp_ext = np.array([f.visemes[PP] for f in with_phones.frames])[at]
    pp_audio = np.array([f.visemes[PP] for f in plain.frames])[at]
    assert at.sum() >= 5 and pp_ext.min() > 0.999 and pp_ext.mean() > pp_audio.mean()
    speech = want[:, VISEME_INDEX["sil"]] < 0.5
    err_ext = np.abs(np.array([list(f.visemes) for f in with_phones.frames])[speech] - want[speech]).mean()
    err_audio = np.abs(np.array([list(f.visemes) for f in plain.frames])[speech] - want[speech]).mean()
    assert err_ext < 0.01 < err_audio  # the phones' mouth, not the network's guess


def test_arpabet_phones_from_a_cloud_tts_and_bad_phones(server, tmp_path):
    data, _ = _espeak_clip(tmp_path, "Hello.")
    arpa = [("pau", 0.0, 0.05), ("HH", 0.05, 0.08), ("AH0", 0.08, 0.15), ("L", 0.15, 0.22), ("OW1", 0.22, 0.45),
            ("XYZ", 0.45, 0.5)]
    req = pb.AnimateClipRequest(audio_file=data, fps=30, phones=[pb.PhoneTiming(phone=p, start=s, end=e)
                                                                  for p, s, e in arpa])
    from bridge_server.client import Animation
    anim = Animation.collect(server.stub.AnimateClip(req, timeout=60))
    assert any("'XYZ'" in w and "read as silence" in w and "pau" not in w for w in anim.status.warnings)
    first = [f for f in anim.frames if f.time < 0.02]  # "pau" is silence, not a /p/ closure
    assert all(f.visemes[PP] < 0.05 for f in first)
    for bad, words in (([("AA", 0.3, 0.2)], "phones[0] has start=0.3, end=0.2"),
                       ([("AA", 0.3, 0.4), ("B", 0.1, 0.2)], "phones[1] starts at 0.1 s, before phones[0]"),
                       ([("AA", float("nan"), 0.4)], "phones[0] has start=nan")):
        req = pb.AnimateClipRequest(audio_file=data, fps=30, phones=[pb.PhoneTiming(phone=p, start=s, end=e)
                                                                      for p, s, e in bad])
        with pytest.raises(grpc.RpcError) as e:
            list(server.stub.AnimateClip(req, timeout=30))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in e.value.details()


# ------------------------------------------------------------------------------------------ CLI
def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "bridge_server.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_speak_writes_frames_and_wav(server, tmp_path):
    out, wav = tmp_path / "f.json", tmp_path / "s.wav"
    r = _cli("speak", "Guten Tag. Wie geht es?", "--language", "de", "--out", str(out), "--audio-out", str(wav),
             "--server", server.target)
    assert r.returncode == 0, r.stderr
    x, sr = sf.read(wav)
    import json
    frames = json.loads(out.read_text())
    assert sr == 22050 and frames["sample_rate"] == 22050
    assert len(frames["frames"]) == -(-len(x) * 30 // sr) and "espeak:de" in r.stdout


def test_cli_speak_refuses_a_non_utf8_file(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café olé".encode("latin-1"))
    r = _cli("speak", "--text-file", str(bad), "--out", str(tmp_path / "x.json"), "--server", "127.0.0.1:1")
    assert r.returncode == 2 and "is not UTF-8 text (byte 3" in r.stderr and "Traceback" not in r.stderr


def test_every_default_language_has_a_voice():
    voices = [v for b in load_backends("") for v in b.voices()]
    from engine.tts.registry import resolve
    for lang in ("en", "zh", "ja", "de", "fr", "es"):
        v, why = resolve(voices, "", lang)
        assert v is not None and not v.missing, why


def test_stream_expression_with_live_phone_timings(server, tmp_path):
    """A streaming cloud TTS: phone timings sent on StreamExpression ahead of the audio they describe."""
    _, syn = _espeak_clip(tmp_path, "Bob bought a big blue ball.")
    pcm = (np.clip(syn.audio, -1, 1) * 32767).astype("<i2").tobytes()
    rows = [pb.PhoneTiming(phone=p.label, start=p.start_s, end=p.end_s) for p in syn.phones]
    half = len(rows) // 2
    step = 2 * 441  # 20 ms chunks at 22.05 kHz
    reqs = [pb.ExpressionRequest(header=pb.StreamHeader(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate=22050,
                                                        channels=1, fps=60, stream_id="live-phones")),
            pb.ExpressionRequest(phones=pb.PhoneTimings(phones=rows[:half]))]
    chunks = [pb.ExpressionRequest(audio=pb.AudioChunk(data=pcm[i:i + step])) for i in range(0, len(pcm), step)]
    reqs += chunks[:5] + [pb.ExpressionRequest(phones=pb.PhoneTimings(phones=rows[half:]))] + chunks[5:]
    reqs.append(pb.ExpressionRequest(end=pb.EndOfAudio()))
    from tests.conftest import split
    hdr, frames, status = split(list(server.stub.StreamExpression(iter(reqs), timeout=60)))
    assert any(w.startswith("phones used") for w in status.warnings)
    t = np.array([f.time for f in frames])
    want, _ = mouth_track(syn.phones).at(t)
    got = np.array([list(f.visemes) for f in frames])
    closing = want[:, PP] >= 0.999
    assert closing.sum() >= 5 and got[closing, PP].min() > 0.999
    speech = want[:, VISEME_INDEX["sil"]] < 0.5
    assert np.abs(got[speech] - want[speech]).mean() < 0.01


def test_stream_expression_bad_phone_timings(server):
    hdr = pb.ExpressionRequest(header=pb.StreamHeader(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate=16000,
                                                      channels=1, fps=30))
    audio = pb.ExpressionRequest(audio=pb.AudioChunk(data=bytes(3200)))
    for msgs, words in (
            ([pb.PhoneTiming(phone="AA", start=0.5, end=0.4)], "message #2: phones.phones[0] has start=0.5"),
            ([pb.PhoneTiming(phone="AA", start=0.5, end=0.6), pb.PhoneTiming(phone="B", start=0.7, end=0.8)],
             None)):
        reqs = [hdr, pb.ExpressionRequest(phones=pb.PhoneTimings(phones=msgs)), audio]
        if words is None:  # a second message that goes back in time
            reqs.append(pb.ExpressionRequest(phones=pb.PhoneTimings(phones=[pb.PhoneTiming(phone="M", start=0.1,
                                                                                           end=0.2)])))
            words = "message #4: phones.phones[0] starts at 0.1 s, before the previous message's last phone (0.7 s)"
        with pytest.raises(grpc.RpcError) as e:
            list(server.stub.StreamExpression(iter(reqs + [audio]), timeout=30))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in e.value.details(), e.value.details()


@needs_festival
def test_festival_starts_on_demand_and_exits_when_idle():
    """Festival's HTS voice holds ~320 MB: a worker runs it only while it is used."""
    import engine.tts.festival as fest

    b = fest.FestivalBackend()
    try:
        kal = next(v for v in b.voices() if v.id == "festival:kal")
        assert b._proc is None
        first = b.synth("Hello.", kal, 1.0)
        pid = b._proc.pid
        b.idle(time.monotonic() + fest.IDLE_S + 1)
        assert b._proc is None and not os.path.exists(f"/proc/{pid}")  # killed and reaped
        again = b.synth("Hello.", kal, 1.0)
        assert again.audio.size == first.audio.size and [p.label for p in again.phones] == [p.label for p in first.phones]
    finally:
        b.close()


def _speech_and_pause_rms(syn) -> tuple[float, float]:
    """RMS of the audio inside the vowel phones, and inside the pauses (leading, trailing, between words)."""
    x, sr = syn.audio, syn.sample_rate
    vowels = [p for p in syn.phones if p.label in ("aa", "ae", "ah", "ao", "aw", "ay", "eh", "er", "ey", "ih", "iy",
                                                   "ow", "oy", "uh", "uw")]
    pauses = [p for p in syn.phones if p.label == "" and p.end_s - p.start_s > 0.05]

    def rms(ps):
        seg = np.concatenate([x[int(p.start_s * sr) + int(0.01 * sr):int(p.end_s * sr) - int(0.01 * sr)] for p in ps])
        return float(np.sqrt(np.mean(seg ** 2)))
    assert vowels and pauses
    return rms(vowels), rms(pauses)


@needs_festival
def test_hts_and_espeak_voices_honour_speaking_rate():
    """rate 1.5: a shorter utterance whose phone timings still sit on the audio (vowels loud, the pause at the
    comma quiet, the last phone ending with the audio); rate 0.7: longer. The HTS voice takes it as its
    engine's speech speed; espeak-ng as words per minute."""
    import engine.tts.festival as fest

    text = "Hello there, how are you doing on this fine morning?"
    b = fest.FestivalBackend()
    try:
        slt = next(v for v in b.voices() if v.id == "festival:us-slt-hts")
        syn = {r: b.synth(text, slt, r) for r in (1.0, 1.5, 0.7, 1.0)}  # 1.0 last again: no rate sticks
    finally:
        b.close()
    n = {r: s.audio.size / s.sample_rate for r, s in syn.items()}
    assert n[1.5] / n[1.0] == pytest.approx(1 / 1.5, abs=0.08) and n[0.7] / n[1.0] == pytest.approx(1 / 0.7, abs=0.12)
    for r, s in syn.items():
        assert not s.warnings
        assert s.phones[-1].end_s == pytest.approx(s.audio.size / s.sample_rate, abs=0.01)
        loud, quiet = _speech_and_pause_rms(s)
        assert quiet < 0.1 * loud, (r, loud, quiet)
    assert [p.label for p in syn[1.5].phones] == [p.label for p in syn[1.0].phones]
    es = EspeakBackend()
    v = next(v for v in es.voices() if v.id == "espeak:en-us")
    fast, normal = es.synth(text, v, 1.5), es.synth(text, v, 1.0)
    assert fast.audio.size / normal.audio.size < 0.8
    assert fast.phones[-1].end_s == pytest.approx(fast.audio.size / fast.sample_rate, abs=0.01)


def test_mandarin_is_read_as_mandarin():
    """espeak-ng 1.51's "cmn" voice reads characters through pinyin spelled as English ("ni three"); the
    backend uses cmn-latn-pinyin, and Mandarin's aspirated stops come out as IPA (tʰ, not the ARPAbet TH)."""
    es = EspeakBackend()
    v = next(v for v in es.voices() if v.id == "espeak:cmn")
    labels = [p.label for p in es.synth("你好，今天我想喝一杯茶。", v, 1.0).phones if p.label]
    assert "θ" not in labels and "ɹ" not in labels and "iː" not in labels, labels  # English "three"
    assert labels[:2] == ["n", "i"] and "χ" in labels and "tʰ" in labels and "th" not in labels, labels

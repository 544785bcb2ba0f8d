"""The Unity plugin's engine-free core (unity_plugin/Runtime/Core), built with Debian's Mono `mcs` and run
with NUnit 2.6's console runner: the same NUnit sources Unity's Test Runner runs as EditMode tests.

Locally the suite skips, naming the apt packages, when the toolchain is missing; CI sets
AVATAR_BRIDGE_REQUIRE_NATIVE=1 (.ci/run) and then a missing toolchain fails."""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from avatarbridge.v1 import bridge_pb2 as pb
from engine.rig import ARKIT_NAMES, BONE_NAMES
from conftest import END, ROOT, SHARED, chunks, header, split

PLUGIN = ROOT / "unity_plugin"
CORE_SRC = PLUGIN / "Runtime" / "Core"
CORE_TESTS = PLUGIN / "Tests" / "Editor" / "Core"
APT = "mono-mcs libnunit-cil-dev nunit-console"


def _toolchain() -> tuple[str, str, str]:
    mcs, runner = shutil.which("mcs"), shutil.which("nunit-console")
    framework = sorted(glob.glob("/usr/lib/cli/nunit.framework-2.6*/nunit.framework.dll"))
    if mcs and runner and framework:
        return mcs, runner, framework[-1]
    missing = ", ".join(n for n, ok in (("mcs", mcs), ("nunit-console", runner), ("nunit.framework.dll", framework))
                        if not ok)
    msg = f"Mono/NUnit toolchain missing ({missing}); install it with: apt-get install {APT}"
    if os.environ.get("AVATAR_BRIDGE_REQUIRE_NATIVE") == "1":
        pytest.fail(msg + " (AVATAR_BRIDGE_REQUIRE_NATIVE=1: required in CI)")
    pytest.skip(msg)


def _mcs(mcs: str, out, sources, refs=(), doc=None, strict=True) -> None:
    flags = ["-warnaserror+", "-nowarn:0649"] if strict else ["-nowarn:0067,0649"]  # 0649: Unity fills serialized fields
    cmd = [mcs, "-langversion:7", "-target:library", "-nologo", *flags, f"-out:{out}",
           *(f"-r:{r}" for r in refs), *([f"-doc:{doc}"] if doc else []), *map(str, sources)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"mcs failed ({' '.join(cmd[:6])} ...):\n{res.stdout}\n{res.stderr}"


def _record_stream(server, path) -> None:
    """Streams the shipped speech clip through a real server (StreamExpression, PCM16 chunks) and writes the
    header and frames as text for ServerStreamTests.cs (float32 values printed to round-trip exactly)."""
    import soundfile as sf

    x, sr = sf.read(str(ROOT / "examples" / "hello.wav"), dtype="int16")
    assert sr == 16000 and x.ndim == 1
    resp = list(server.stub.StreamExpression(iter([header(rate=sr, fps=30, stream_id="unity-core"),
                                                   *chunks(x.tobytes(), 6400), END]), timeout=60))
    hdr, frames, status = split(resp)
    assert status is not None and len(frames) == status.frames_sent > 0
    lines = ["names " + " ".join(hdr.blendshape_names), "bones " + " ".join(hdr.bone_names),
             f"stream {hdr.fps} {hdr.lookahead_ms!r}"]
    for f in frames:
        vals = " ".join(f"{v:.9g}" for v in [*f.weights, *f.rotations])
        lines.append(f"frame {f.index} {f.time!r} {vals}")
    path.write_text("\n".join(lines) + "\n")


def _record_speak(server, path, text: str, fps: int, stop_at: float | None = None) -> None:
    """Speaks `text` through a real server (Speak, espeak-ng's en-us voice: deterministic and always installed)
    and writes every response in arrival order as text for SpeakTimelineTests.cs: the header, each SpeakAudio
    (PCM16 as hex), each frame, the status; with `stop_at`, a SpeakStop is sent once the first audio arrived and a
    `stop` line marks where (the C# core has no gRPC of its own: the Transport assembly's Grpc.Net.Client needs
    Unity's HTTP/2 handler, so the wire is driven from here, as _record_stream does for StreamExpression)."""
    import threading

    from bridge_server.client import speak_start

    got_audio, done = threading.Event(), threading.Event()

    def requests():
        yield speak_start(text, voice="espeak:en-us", fps=fps, stream_id="unity-speak")
        if stop_at is not None:
            got_audio.wait(30)
            yield pb.SpeakRequest(stop=pb.SpeakStop(at_time=stop_at))
        done.wait(60)

    lines, stop_written = [], False
    try:
        for r in server.stub.Speak(requests(), timeout=60):
            kind = r.WhichOneof("msg")
            if kind == "header":
                h = r.header
                lines += [f"speak {h.sample_rate} {h.expression.fps} {h.voice}",
                          "names " + " ".join(h.expression.blendshape_names), "bones " + " ".join(h.expression.bone_names)]
            elif kind == "audio":
                lines.append(f"audio {r.audio.sample_index} {r.audio.pcm16.hex()}")
                if stop_at is not None and not stop_written:
                    lines.append(f"stop {stop_at!r}")
                    stop_written = True
                    got_audio.set()
            elif kind == "frames":
                for f in r.frames.frames:
                    vals = " ".join(f"{v:.9g}" for v in [*f.weights, *f.rotations])
                    lines.append(f"frame {f.index} {f.time!r} {vals}")
            else:
                st = r.status
                lines.append(f"status {st.frames_sent} {st.audio_seconds!r} {int(st.stopped)} {st.sentences}")
    finally:
        done.set()
    assert lines and lines[-1].startswith("status"), "Speak ended without a status"
    path.write_text("\n".join(lines) + "\n")


def test_core_builds_with_mcs_and_its_nunit_suite_passes(tmp_path, server):
    mcs, runner, framework = _toolchain()
    core_dll, tests_dll = tmp_path / "AvatarBridge.Core.dll", tmp_path / "AvatarBridge.Core.Tests.dll"
    # -warnaserror + -doc: every public member of the core carries XML docs
    _mcs(mcs, core_dll, sorted(CORE_SRC.glob("*.cs")), doc=tmp_path / "AvatarBridge.Core.xml")
    _mcs(mcs, tests_dll, sorted(CORE_TESTS.glob("*.cs")), refs=[core_dll, framework, "System.Core.dll"])
    shutil.copy(framework, tmp_path)
    result = tmp_path / "TestResult.xml"
    env = dict(os.environ)
    env.setdefault("AVATAR_BRIDGE_SHARED_DATA", str(SHARED))  # the avatars the mapping tests read
    env["AVATAR_BRIDGE_FRAMES_FILE"] = str(tmp_path / "stream.txt")
    _record_stream(server, tmp_path / "stream.txt")
    env["AVATAR_BRIDGE_SPEAK_FILE"] = str(tmp_path / "speak.txt")
    _record_speak(server, tmp_path / "speak.txt", "Mama made a bumpy map.", fps=60)
    env["AVATAR_BRIDGE_SPEAK_STOP_FILE"] = str(tmp_path / "speak_stop.txt")
    _record_speak(server, tmp_path / "speak_stop.txt",
                  " ".join(f"Sentence {i} talks about many wonderful things." for i in range(300)), fps=30, stop_at=1.0)
    run = subprocess.run([runner, "-nologo", "-noshadow", str(tests_dll), f"-xml={result}"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env=env)
    assert result.exists(), f"nunit-console wrote no result (rc={run.returncode}):\n{run.stdout}\n{run.stderr}"
    root = ET.parse(result).getroot()
    failed = [f"{c.get('name')}: {(c.findtext('.//message') or '').strip()}"
              for c in root.iter("test-case") if c.get("executed") == "True" and c.get("success") == "False"]
    assert not failed and run.returncode == 0, "NUnit failures:\n" + "\n".join(failed) + "\n" + run.stdout[-4000:]
    total = int(root.get("total"))
    ignored = [f"{c.get('name')}: {(c.findtext('.//message') or '').strip()}"
               for c in root.iter("test-case") if c.get("executed") == "False"]
    assert total + len(ignored) >= 20, f"only {total} NUnit tests ran ({len(ignored)} ignored)"
    if ignored:
        pytest.skip(f"{total} NUnit tests passed but {len(ignored)} did not run: " + "; ".join(ignored))


def test_transport_authorization_handler_puts_the_token_on_every_call(tmp_path):
    """The Transport assembly's AuthorizationHandler (the bearer token on every request of a BridgeChannel) against
    Mono's real System.Net.Http: the one Transport piece that runs without Unity's HTTP/2 handler."""
    mcs, runner, framework = _toolchain()
    http = "/usr/lib/mono/4.5/System.Net.Http.dll"
    if not os.path.exists(http):
        msg = f"{http} missing; install it with: apt-get install libmono-system-net-http4.0-cil"
        if os.environ.get("AVATAR_BRIDGE_REQUIRE_NATIVE") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    core_dll, tests_dll = tmp_path / "AvatarBridge.Core.dll", tmp_path / "AvatarBridge.Transport.AuthTests.dll"
    _mcs(mcs, core_dll, sorted(CORE_SRC.glob("*.cs")))
    _mcs(mcs, tests_dll, [PLUGIN / "Runtime" / "Transport" / "AuthorizationHandler.cs",
                          ROOT / "tests" / "unity_authorization_handler_tests.cs"],
         refs=[core_dll, framework, http, "System.Core.dll"])
    shutil.copy(framework, tmp_path)
    result = tmp_path / "TestResult.xml"
    run = subprocess.run([runner, "-nologo", "-noshadow", str(tests_dll), f"-xml={result}"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert result.exists(), f"nunit-console wrote no result (rc={run.returncode}):\n{run.stdout}\n{run.stderr}"
    root = ET.parse(result).getroot()
    assert run.returncode == 0 and int(root.get("total")) == 2 and root.get("failures") == "0", run.stdout[-4000:]


# Stand-ins for what the Speak client (Transport/SpeakSession.cs) and the "say this line" sample use beyond
# tests/unity_api_standins.cs: the generated Speak messages and client method (names as protoc --csharp_out
# makes them from proto/; test_unity_package checks those names against the proto), ByteString.ToByteArray and
# Unity's streaming AudioClip. Added to a copy of the shared stand-ins unless they already declare them.
SPEAK_STANDINS = {
    "public sealed class Metadata { }": """public sealed class Metadata { }
    public sealed class SpeakStart { public string Text, Voice, Language, StreamId; public float SpeakingRate; public uint Fps; public ExpressionStyle Style; }
    public sealed class SpeakStop { public double AtTime; }
    public sealed class SpeakRequest { public SpeakStart Start; public SpeakStop Stop; }
    public sealed class SpeakHeader { public string StreamId, Voice, Language, TtsEngine; public uint SampleRate; public float LookaheadMs; public ExpressionHeader Expression; }
    public sealed class SpeakAudio { public ulong SampleIndex; public double Time; public ByteString Pcm16; }
    public sealed class SpeakStatus { public ulong FramesSent; public double AudioSeconds, SynthesisSeconds; public RepeatedField<string> Warnings; public uint Sentences; public bool Stopped; }
    public sealed class SpeakResponse { public enum MsgOneofCase { None, Header, Audio, Frames, Status } public MsgOneofCase MsgCase; public SpeakHeader Header; public SpeakAudio Audio; public FrameBatch Frames; public SpeakStatus Status; }""",
    "public AsyncDuplexStreamingCall<ExpressionRequest, ExpressionResponse> StreamExpression(":
        "public AsyncDuplexStreamingCall<SpeakRequest, SpeakResponse> Speak(Metadata headers = null, DateTime? deadline = null, "
        "CancellationToken cancellationToken = default(CancellationToken)) { return null; }\n            "
        "public AsyncDuplexStreamingCall<ExpressionRequest, ExpressionResponse> StreamExpression(",
    "public static ByteString CopyFrom(byte[] b) { return null; }":
        "public static ByteString CopyFrom(byte[] b) { return null; } public byte[] ToByteArray() { return null; }",
    "public class AudioClip : Object {":
        "public class AudioClip : Object { public delegate void PCMReaderCallback(float[] data); "
        "public static AudioClip Create(string n, int len, int ch, int freq, bool stream, PCMReaderCallback r) { return null; }",
    "public class AudioSource : Behaviour {": "public class AudioSource : Behaviour { public void Play() {} public bool isPlaying { get { return false; } }",
}


def _standins_with_speak(tmp_path):
    text = (ROOT / "tests" / "unity_api_standins.cs").read_text()
    if "class SpeakRequest" not in text:
        for anchor, replacement in SPEAK_STANDINS.items():
            assert anchor in text, f"tests/unity_api_standins.cs changed: no '{anchor}' to extend"
            text = text.replace(anchor, replacement, 1)
    out = tmp_path / "unity_api_standins_speak.cs"
    out.write_text(text)
    return out


def test_unity_assemblies_type_check_along_the_asmdef_graph(tmp_path):
    """The Unity-only sources (Transport, Face, Device, Editor, PlayMode tests, sample) cannot be compiled
    against Unity here. Type-check each assembly with mcs against API stand-ins (tests/unity_api_standins.cs),
    referencing only the package assemblies its .asmdef names, so a type error, a C# feature mcs rejects, or
    a use of an assembly the .asmdef does not reference fails here rather than in a user's editor."""
    mcs, _, framework = _toolchain()
    standins = tmp_path / "UnityApiStandIns.dll"
    _mcs(mcs, standins, [_standins_with_speak(tmp_path)], refs=["System.Core.dll"], strict=False)
    defs = {}
    for p in PLUGIN.rglob("*.asmdef"):
        d = json.loads(p.read_text())
        defs[d["name"]] = (p.parent, d)
    dirs = {folder for folder, _ in defs.values()}
    built: dict[str, object] = {}

    def build(name: str) -> None:
        if name in built or name not in defs:
            return
        folder, d = defs[name]
        for ref in d["references"]:
            build(ref)
        sources = [cs for cs in sorted(folder.rglob("*.cs"))
                   if not any(parent in dirs for parent in cs.parents if parent != folder and folder in parent.parents)]
        refs = [standins, "System.Core.dll", *(built[r] for r in d["references"] if r in built)]
        if "nunit.framework.dll" in d.get("precompiledReferences", []):
            refs.append(framework)
        out = tmp_path / f"{name}.dll"
        runtime = PLUGIN / "Runtime" in folder.parents  # public runtime API: XML docs required (CS1591 is an error)
        _mcs(mcs, out, sources, refs=refs, doc=tmp_path / f"{name}.xml" if runtime else None)
        built[name] = out

    for name in defs:
        build(name)
    assert {"AvatarBridge.Transport", "AvatarBridge.Face", "AvatarBridge.Device", "AvatarBridge.Editor",
            "AvatarBridge.Runtime.Tests", "AvatarBridge.Samples.SpeechDrivenAvatar",
            "AvatarBridge.Samples.SayThisLine"} <= set(built)


def test_core_table_matches_the_contract_and_core_stays_engine_free():
    src = (CORE_SRC / "ArkitNames.cs").read_text()
    body = src[src.index("blendshapes =") : src.index("};", src.index("blendshapes ="))]
    assert tuple(re.findall(r'"(\w+)"', body)) == ARKIT_NAMES
    bones = re.search(r"bones = \{([^}]*)\}", src).group(1)
    assert tuple(re.findall(r'"(\w+)"', bones)) == BONE_NAMES
    asmdef = json.loads((CORE_SRC / "AvatarBridge.Core.asmdef").read_text())
    assert asmdef["noEngineReferences"] is True and asmdef["references"] == []
    for cs in CORE_SRC.glob("*.cs"):
        text = "\n".join(line for line in cs.read_text().splitlines() if not line.lstrip().startswith("//"))
        for forbidden in ("UnityEngine", "UnityEditor", "Grpc.", "Google.Protobuf"):
            assert forbidden not in text, f"{cs.name} uses {forbidden}; the core must stay engine- and transport-free"

"""Consistency of the Unity package that Unity itself would check on import (no Unity here): manifest,
.meta files, assembly graph, serialized field names in the sample's assets, and the contract names the C#
transport uses against the canonical proto/."""
from __future__ import annotations

import json
import re
import subprocess
import sys

from conftest import ROOT

PKG = ROOT / "unity_plugin"
PROTO = ROOT / "proto" / "avatarbridge" / "v1" / "bridge.proto"
EXTERNAL_ASSEMBLIES = {  # not in this package: generated, third-party or Unity's
    "AvatarBridge.Contract", "YetAnotherHttpHandler", "glTFast", "UnityEngine.TestRunner", "UnityEditor.TestRunner"}


def _asmdefs() -> dict[str, tuple]:
    out = {}
    for p in PKG.rglob("*.asmdef"):
        d = json.loads(p.read_text())
        assert d["name"] not in out, f"duplicate assembly name {d['name']}"
        out[d["name"]] = (p, d)
    return out


def test_manifest_is_a_valid_upm_package():
    m = json.loads((PKG / "package.json").read_text())
    assert re.fullmatch(r"[a-z0-9.-]+", m["name"]) and m["name"].count(".") >= 2
    assert re.fullmatch(r"\d+\.\d+\.\d+", m["version"])
    assert m["unity"] == "2021.3"
    for s in m["samples"]:
        assert (PKG / s["path"]).is_dir(), s["path"]
    for d in ("Runtime", "Editor", "Tests/Runtime", "Tests/Editor", "Samples~", "Documentation~"):
        assert (PKG / d).is_dir(), d


def test_every_asset_has_a_unique_meta():
    res = subprocess.run([sys.executable, str(PKG / "Tools~" / "unity_meta.py"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, "run python unity_plugin/Tools~/unity_meta.py:\n" + res.stdout
    guids = {}
    for meta in PKG.rglob("*.meta"):
        assert meta.with_suffix("").exists() or meta.with_name(meta.name[:-5]).exists(), f"orphan {meta}"
        g = re.search(r"^guid: ([0-9a-f]{32})$", meta.read_text(), re.M).group(1)
        assert g not in guids, f"{meta} and {guids[g]} share a GUID"
        guids[g] = meta


def test_assembly_graph_resolves_and_layers_hold():
    defs = _asmdefs()
    assert {"AvatarBridge.Core", "AvatarBridge.Transport", "AvatarBridge.Face", "AvatarBridge.Device",
            "AvatarBridge.Editor", "AvatarBridge.Core.Tests", "AvatarBridge.Runtime.Tests"} <= set(defs)
    for name, (path, d) in defs.items():
        for ref in d["references"]:
            assert ref in defs or ref in EXTERNAL_ASSEMBLIES, f"{path.name}: unknown reference {ref}"
    # layering: the core references nothing; transport has no engine; only Editor/Tests are editor-bound
    assert defs["AvatarBridge.Core"][1]["references"] == [] and defs["AvatarBridge.Core"][1]["noEngineReferences"]
    assert defs["AvatarBridge.Transport"][1]["noEngineReferences"]
    assert "AvatarBridge.Device" not in defs["AvatarBridge.Face"][1]["references"]
    assert defs["AvatarBridge.Editor"][1]["includePlatforms"] == ["Editor"]
    # acyclic
    seen, stack = set(), set()

    def visit(n):
        assert n not in stack, f"assembly cycle through {n}"
        if n in seen or n not in defs:
            return
        stack.add(n)
        for r in defs[n][1]["references"]:
            visit(r)
        stack.discard(n)
        seen.add(n)

    for n in defs:
        visit(n)


def _serialized_fields(cs: str) -> set[str]:
    return set(re.findall(r"\[SerializeField[^\]]*\][^;=]*?\s(\w+)\s*(?:=|;)", cs)) | \
           set(re.findall(r"^\s*public\s+(?:string|float|int)\s+(\w+)\s*(?:=|;)", cs, re.M))


def _guid(rel: str) -> str:
    return re.search(r"^guid: (\w+)$", (PKG / (rel + ".meta")).read_text(), re.M).group(1)


def test_sample_assets_reference_real_scripts_and_fields():
    sample = PKG / "Samples~" / "SpeechDrivenAvatar"
    # The assets are DefaultFaceMapper instances; Unity serializes the abstract FaceMapper's fields with them.
    mapper_fields = (_serialized_fields((PKG / "Runtime/Face/DefaultFaceMapper.cs").read_text())
                     | _serialized_fields((PKG / "Runtime/Face/FaceMapper.cs").read_text()))
    for asset in ("ReadyPlayerMe.asset", "VRoid.asset"):
        text = (sample / asset).read_text()
        assert f"guid: {_guid('Runtime/Face/DefaultFaceMapper.cs')}" in text
        keys = re.findall(r"^  (\w+):", text, re.M)
        for k in keys:
            assert k.startswith("m_") or k in mapper_fields, f"{asset}: field {k} is not in DefaultFaceMapper"
    scene = (sample / "SpeechDrivenAvatar.unity").read_text()
    assert f"guid: {_guid('Samples~/SpeechDrivenAvatar/SpeechDrivenAvatarSample.cs')}" in scene
    assert f"guid: {_guid('Samples~/SpeechDrivenAvatar/ReadyPlayerMe.asset')}" in scene
    sample_fields = _serialized_fields((sample / "SpeechDrivenAvatarSample.cs").read_text())
    block = scene[scene.index("--- !u!114 &303"):]
    for k in re.findall(r"^  (\w+):", block, re.M):
        assert k.startswith("m_") or k in sample_fields, f"scene: field {k} is not in SpeechDrivenAvatarSample"


def _block(text: str, open_at: int) -> str:
    """The text between the brace at open_at and its match."""
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_at + 1:i]
    raise AssertionError("unbalanced braces")


def _top_level(body: str) -> str:
    """body with nested {...} blocks removed."""
    out, depth = [], 0
    for ch in body:
        depth += ch == "{"
        if depth == 0:
            out.append(ch)
        depth -= ch == "}"
    return "".join(out)


def _proto_names() -> tuple[set[str], dict[str, set[str]]]:
    text = PROTO.read_text()
    types = set(re.findall(r"^(?:message|enum|service)\s+(\w+)", text, re.M))
    fields: dict[str, set[str]] = {}
    for m in re.finditer(r"^message\s+(\w+)\s*\{", text, re.M):
        body = _block(text, m.end() - 1)
        names = re.findall(r"(?:optional\s+|repeated\s+)?[\w.]+\s+(\w+)\s*=\s*\d+", body)
        fields[m.group(1)] = {"".join(p.capitalize() for p in n.split("_")) for n in names}
    return types, fields


def test_csharp_uses_only_contract_names_that_the_proto_defines():
    """The generated C# (protoc --csharp_out from proto/) names messages as in the proto and fields in
    PascalCase; every Contract.X and object-initializer field the transport uses must exist there."""
    assert 'option csharp_namespace = "AvatarBridge.V1";' in PROTO.read_text()
    types, fields = _proto_names()
    services = set(re.findall(r"^\s+rpc\s+(\w+)\(", PROTO.read_text(), re.M))
    all_fields = set().union(*fields.values())
    used_types, used_members = set(), set()
    for cs in list((PKG / "Runtime").rglob("*.cs")):
        text = cs.read_text()
        used_types |= set(re.findall(r"Contract\.(\w+)", text)) | set(re.findall(r"AvatarBridge\.V1\.(\w+)", text))
        for m in re.finditer(r"new Contract\.(\w+)\s*\{", text):
            body = _top_level(_block(text, m.end() - 1))
            used_members |= {(m.group(1), f) for f in re.findall(r"(\w+)\s*=", body)}
    assert used_types, "the transport no longer uses the contract?"
    for t in used_types - {"ContractStamp"}:
        assert t in types or t in services, f"C# uses Contract.{t}, which proto/ does not define"
    for msg, f in used_members:
        assert f in fields.get(msg, set()), f"C# sets {msg}.{f}, which proto/ does not define"
    # members read off responses (r.Header.LookaheadMs, f.HeadTranslation, caps.SupportedFps, ...)
    device = (PKG / "Runtime/Device/BridgeClientDevice.cs").read_text()
    session = (PKG / "Runtime/Transport/ExpressionSession.cs").read_text()
    for name in set(re.findall(r"\b(?:r\.Header|caps|l|st|f)\.([A-Z]\w+)", device + session)) - {"Limits", "Count"}:
        assert name in all_fields, f"C# reads .{name}, which is no field of proto/"
    speak = (PKG / "Runtime/Transport/SpeakSession.cs").read_text()  # r.Header.Voice, r.Audio.Pcm16, e.Fps, ...
    read = set(re.findall(r"\br\.(?:Header|Audio|Frames|Status)\.([A-Z]\w+)", speak)) | set(re.findall(r"\be\.([A-Z]\w+)", speak))
    assert {"Voice", "SampleRate", "Pcm16", "SampleIndex", "Expression", "Fps"} <= read
    for name in read - {"ToByteArray"}:
        assert name in all_fields, f"SpeakSession reads .{name}, which is no field of proto/"
    assert "Speak" in services and {"SpeakRequest", "SpeakStart", "SpeakStop", "SpeakResponse"} <= used_types
    script = (PKG / "Tools~" / "generate-contract.sh").read_text()
    assert 'proto_root="$repo/proto"' in script and "avatarbridge/v1/bridge.proto" in script
    assert not list(PKG.rglob("*.proto")), "the package must not carry a copy of the proto"


def test_no_placeholders_in_the_package():
    for p in PKG.rglob("*"):
        if p.suffix in (".cs", ".md", ".sh", ".py", ".json"):
            text = p.read_text()
            for bad in ("TODO", "FIXME", "NotImplementedException", "XXX"):
                assert bad not in text, f"{p.relative_to(ROOT)} contains {bad}"

"""The generated stubs match proto/, and the contract's tables match the engine's."""
from __future__ import annotations

import pathlib
import tempfile

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from avatarbridge.v1 import bridge_pb2 as pb
from engine.rig import ARKIT_NAMES, BONE_NAMES

from conftest import ROOT

PROTO = ROOT / "proto" / "avatarbridge" / "v1" / "bridge.proto"


def compile_proto() -> descriptor_pb2.FileDescriptorProto:
    import grpc_tools
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "set.pb"
        include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
        rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--descriptor_set_out={out}",
                          "avatarbridge/v1/bridge.proto"])
        assert rc == 0
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    fresh = fds.file[0]
    # protoc's descriptor sets carry json_name; the embedded Python descriptor leaves it derived.
    for f in [*fresh.extension, *(f for msg in fresh.message_type for f in msg.field)]:
        f.ClearField("json_name")
    return fresh


def test_generated_stubs_match_the_proto_file():
    fresh = compile_proto()
    shipped = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert shipped == fresh, "the installed stubs are stale: reinstall (pip install -e .) to regenerate them"


def test_stubs_are_not_committed():
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "avatarbridge"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked.strip() == "", f"generated stubs must not be committed: {tracked}"


def test_canonical_arkit_table_matches_engine():
    names = [v.GetOptions().Extensions[pb.arkit_name] for v in pb.ArkitBlendshape.DESCRIPTOR.values]
    numbers = [v.number for v in pb.ArkitBlendshape.DESCRIPTOR.values]
    assert numbers == list(range(52))
    assert tuple(names) == ARKIT_NAMES
    bones = [v.GetOptions().Extensions[pb.arkit_name] for v in pb.Bone.DESCRIPTOR.values]
    assert tuple(bones) == BONE_NAMES
    # Enum names are the camelCase names in UPPER_SNAKE, so C++/C# code can rely on either.
    for v, name in zip(pb.ArkitBlendshape.DESCRIPTOR.values, names):
        assert v.name.replace("_", "").lower() == name.lower()


def test_capabilities_over_grpc(server):
    caps = server.stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=10)
    assert caps.api_version == "avatarbridge.v1"
    assert tuple(caps.blendshape_names) == ARKIT_NAMES
    assert tuple(caps.bone_names) == BONE_NAMES
    assert list(caps.supported_fps) == [30, 60]
    assert caps.limits.max_message_bytes == 1024 * 1024
    assert caps.limits.max_audio_seconds == 1200
    default = [e for e in caps.engines if e.is_default and e.kind == "expression"]
    assert len(default) == 1 and default[0].name == "learned-v2" and 0 < default[0].lookahead_ms <= 100
    capture = [e for e in caps.engines if e.kind == "capture"]
    assert [e.name for e in capture] == ["mediapipe-face-landmarker"] and capture[0].lookahead_ms == 0
    assert {"wav", "flac", "ogg", "mp3"} <= set(caps.clip_formats)


def test_health_and_reflection(server):
    health = health_pb2_grpc.HealthStub(server.channel)
    for service in ("", "avatarbridge.v1.AvatarBridge"):
        resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    resp = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                          timeout=5))
    names = {s.name for s in resp.list_services_response.service}
    assert {"avatarbridge.v1.AvatarBridge", "grpc.health.v1.Health"} <= names
    with pytest_raises_rpc(grpc.StatusCode.NOT_FOUND):
        health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)


class pytest_raises_rpc:
    def __init__(self, code):
        self.code = code

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        assert isinstance(exc, grpc.RpcError), f"expected an RpcError {self.code}, got {exc!r}"
        assert exc.code() == self.code, (exc.code(), exc.details())
        return True

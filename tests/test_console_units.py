"""The console's shipped pieces without a browser: the default head (all 52 ARKit targets moving the right regions,
the four bones, rebuilt by its generator to float rounding), the front end's ARKit list, and the console process staying
a gRPC client (no engine module imported)."""
from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np

from conftest import ROOT
from engine.rig.arkit import ARKIT_NAMES, BONE_NAMES

sys.path.insert(0, str(ROOT / "console_web"))
import make_head as mh  # noqa: E402

HEAD = ROOT / "bridge_server" / "console" / "static" / "head.glb"


def glb_json(data: bytes) -> dict:
    magic, version, _ = struct.unpack_from("<III", data, 0)
    assert magic == 0x46546C67 and version == 2
    n, kind = struct.unpack_from("<II", data, 12)
    assert kind == 0x4E4F534A
    return json.loads(data[20:20 + n])


def test_front_end_arkit_list_is_the_canonical_one():
    names = json.loads((ROOT / "console_web" / "src" / "arkit.json").read_text())
    assert names == {"blendshapes": list(ARKIT_NAMES), "bones": list(BONE_NAMES)}


def glb_arrays(data: bytes) -> list[np.ndarray]:
    """Every accessor's data of a GLB (its binary chunk read through the JSON's buffer views)."""
    g = glb_json(data)
    n = struct.unpack_from("<I", data, 12)[0]
    bn = struct.unpack_from("<I", data, 20 + n)[0]
    binary = data[28 + n:28 + n + bn]
    types = {5126: "<f4", 5125: "<u4", 5123: "<u2", 5121: "u1"}
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
    out = []
    for a in g["accessors"]:
        v = g["bufferViews"][a["bufferView"]]
        off = v.get("byteOffset", 0) + a.get("byteOffset", 0)
        out.append(np.frombuffer(binary, types[a["componentType"]], a["count"] * width[a["type"]], off))
    return out


def test_shipped_head_has_every_arkit_target_and_the_bones_and_matches_its_generator():
    data = HEAD.read_bytes()
    fresh = mh.build()
    # The same file up to float rounding: the generator's trigonometry may differ in the last bit between numpy
    # builds, so the JSON (structure, names, accessor sizes) must be identical and every number within 1e-6.
    assert glb_json(data) == glb_json(fresh) and len(data) == len(fresh), \
        "head.glb is stale: run python console_web/make_head.py"
    for a, b in zip(glb_arrays(data), glb_arrays(fresh)):
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg="head.glb is stale: run make_head.py")
        else:
            np.testing.assert_array_equal(a, b, err_msg="head.glb is stale: run python console_web/make_head.py")
    g = glb_json(data)
    found = {n for m in g["meshes"] for n in m.get("extras", {}).get("targetNames", [])}
    assert found == set(ARKIT_NAMES)
    nodes = {n.get("name") for n in g["nodes"]}
    assert set(BONE_NAMES) <= nodes
    assert len(data) < 1_000_000


def test_head_targets_move_the_regions_their_names_say():
    rest, lips = mh.targets_for(mh.lips_geom, ARKIT_NAMES)
    lower = lips["jawOpen"][1]  # the lower-lip block
    assert lower[:, 1].mean() < -0.015 and abs(lips["jawOpen"][0][:, 1]).max() < 1e-9  # upper lip stays
    smile_l = lips["mouthSmileLeft"][0]
    moved = np.abs(smile_l).max(axis=1) > 1e-5
    assert (rest[0][moved, 0] >= 0).all() and smile_l[:, 1].max() > 0.005  # subject's left (+X) corner goes up
    for side, sign in (("L", 1), ("R", -1)):
        (up, _), _ = mh.lid_geom(mh.P(), side)
        _, lids = mh.targets_for(lambda p: mh.lid_geom(p, side)[0], ARKIT_NAMES)
        blink = "eyeBlinkLeft" if side == "L" else "eyeBlinkRight"
        assert set(lids) >= {blink} and not ({"eyeBlinkLeft", "eyeBlinkRight"} - {blink}) & set(lids)
        assert lids[blink][0][:, 1].mean() < 0 and (np.sign(up[:, 0]) == sign).all()
    _, face = mh.targets_for(lambda p: [mh.face_deform(mh.face_base()[0], p)], ARKIT_NAMES)
    assert {"jawOpen", "cheekPuff", "cheekSquintLeft"} <= set(face)


def test_console_process_imports_no_engine_module():
    code = ("import sys, bridge_server.console.app, bridge_server.console.main, bridge_server.console.live, "
            "bridge_server.console.video; print(sorted(m for m in sys.modules if m.split('.')[0] == 'engine'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_console_refuses_bad_flags_with_one_line():
    for args, needle in ((["--clip", "no/such.wav"], "--clip no/such.wav: no such file"),
                         (["--max-upload-mb", "0"], "--max-upload-mb must be 1..4096"),
                         (["--port", "70000"], "--port must be 0..65535")):
        out = subprocess.run([sys.executable, "-m", "bridge_server.cli", "console", "--server", "127.0.0.1:1", *args],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and needle in out.stderr and "Traceback" not in out.stderr, out.stderr

"""Preview renderer on the real avatars: posing (morphs by name, bone rotations, skinning), rendering, writers, CLI.

Signs follow docs/conventions.md: avatar space is right-handed, Y up, the subject faces +Z and its own left is +X,
so in the front view the subject's left is image right.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, shared_file

pytest.importorskip("moderngl", reason="the render extra is not installed: pip install -e '.[render]'")

from engine.render import Avatar, AvatarError, FaceRenderer, FramesError, axis_angle_quat, load_frames  # noqa: E402
from engine.render.transforms import quat_to_matrix  # noqa: E402
from engine.render.writers import frame_schedule  # noqa: E402
from engine.rig import ARKIT_INDEX, ARKIT_NAMES, BONE_NAMES  # noqa: E402

AVATARS = ["brunette-t.glb", "vroid.glb"]
SIZE = 160


@pytest.fixture(scope="module")
def avatars():
    return {name: Avatar.load(shared_file(f"avatars/{name}")) for name in AVATARS}


@pytest.fixture(scope="module")
def renderers(avatars):
    rs = {name: FaceRenderer(av, SIZE, SIZE) for name, av in avatars.items()}
    yield rs
    for r in rs.values():
        r.close()


def weights(**kw) -> np.ndarray:
    w = np.zeros(len(ARKIT_NAMES), np.float32)
    for name, v in kw.items():
        w[ARKIT_INDEX[name]] = v
    return w


def rotations(**kw) -> np.ndarray:
    """rotations(Head=((0, 1, 0), 20)) -> 16 floats, identity for bones not given."""
    q = np.tile(np.array([0, 0, 0, 1.0]), (len(BONE_NAMES), 1))
    for bone, (axis, deg) in kw.items():
        q[BONE_NAMES.index(bone)] = axis_angle_quat(axis, deg)
    return q.reshape(-1)


def face_vertices(pose) -> np.ndarray:
    return np.concatenate([pose.positions[i] for i in pose.avatar.face_primitives()])


def bound_to(avatar: Avatar, bone: str, pose) -> np.ndarray:
    """Posed positions of the vertices skinned mostly (> 0.5) to `bone`."""
    node = avatar.bones[bone]
    out = []
    for i, prim in enumerate(avatar.primitives):
        if prim.joint_nodes is None or node not in prim.joint_nodes:
            continue
        j = int(np.nonzero(prim.joint_nodes == node)[0][0])
        w = (prim.weights * (prim.joints == j)).sum(1)
        out.append(pose.positions[i][w > 0.5])
    return np.concatenate(out)


def nose_tip_index(avatar: Avatar) -> int:
    """The front-most (max Z) rest vertex of those skinned to Head: the nose tip on both avatars."""
    return int(np.argmax(bound_to(avatar, "Head", avatar.rest)[:, 2]))


def jaw_region(avatar: Avatar) -> np.ndarray:
    """Rest positions of the face vertices that jawOpen moves most (top 5 %)."""
    d = np.linalg.norm(face_vertices(avatar.pose(weights(jawOpen=1))) - face_vertices(avatar.rest), axis=1)
    return face_vertices(avatar.rest)[d >= np.quantile(d[d > 0], 0.95)]


def box(renderer: FaceRenderer, pts: np.ndarray, pad: int = 3):
    xy = renderer.project(pts)
    x0, y0 = np.floor(xy.min(0)).astype(int) - pad
    x1, y1 = np.ceil(xy.max(0)).astype(int) + pad
    return slice(max(y0, 0), y1), slice(max(x0, 0), x1)


# -- loading ---------------------------------------------------------------------------------------------------------
def test_loads_face_meshes_bones_and_targets(avatars):
    rpm, vroid = avatars["brunette-t.glb"], avatars["vroid.glb"]
    face_meshes = {rpm.primitives[i].mesh_name for i in rpm.face_primitives()}
    assert face_meshes == {"Wolf3D_Head", "Wolf3D_Teeth", "EyeLeft", "EyeRight"}
    assert len(rpm.arkit_present) == 52
    assert {vroid.primitives[i].mesh_name for i in vroid.face_primitives()} == {"Face (merged)(Clone)"}
    # this VRoid export carries jawOpen (and 12 others) as all-zero targets: not present, jawOpen falls back
    assert "eyeBlinkLeft" in vroid.arkit_present and "cheekPuff" not in vroid.arkit_present
    assert vroid.fallbacks_used == {"jawOpen": "Fcl_MTH_A"}
    for av in (rpm, vroid):
        assert set(av.bones) == set(BONE_NAMES)
        # rest pose sanity: metres, Y up, eyes above neck, subject's left eye at +X
        rest = av.rest
        assert 1.2 < rest.bone_position("Head")[1] < 2.0
        assert rest.bone_position("LeftEye")[0] > 0 > rest.bone_position("RightEye")[0]
        assert rest.bone_position("LeftEye")[1] > rest.bone_position("Neck")[1]


# -- blendshapes -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", AVATARS)
def test_jaw_open_moves_chin_region_down(avatars, name):
    av = avatars[name]
    rest, posed = av.rest, av.pose(weights(jawOpen=1))
    d = face_vertices(posed) - face_vertices(rest)
    moved = np.linalg.norm(d, axis=1)
    top = moved >= np.quantile(moved[moved > 0], 0.95)
    mean = d[top].mean(0)
    assert mean[1] < -0.004, f"jawOpen should move the chin down by millimetres, mean move {mean}"
    assert -mean[1] > abs(mean[0]), "the chin moves down, not sideways"
    region = face_vertices(rest)[top]
    eyes_y = min(rest.bone_position("LeftEye")[1], rest.bone_position("RightEye")[1])
    assert (region[:, 1] < eyes_y).all(), "the moved region is the lower face"
    assert abs(region[:, 0].mean()) < 0.01, "and it is centred on the midline"
    # by name, not by index: the blink shape does not open the jaw
    blink = face_vertices(av.pose(weights(eyeBlinkLeft=1))) - face_vertices(rest)
    assert np.abs(blink[top]).max() < 1e-4


@pytest.mark.parametrize("name", AVATARS)
def test_jaw_open_changes_mouth_pixels_only(renderers, avatars, name):
    r = renderers[name]
    rest, opened = r.render(), r.render(weights(jawOpen=1))
    diff = np.abs(rest.astype(int) - opened.astype(int)).sum(2)
    ys, xs = box(r, jaw_region(avatars[name]), pad=6)
    assert diff[ys, xs].mean() > 15, "the mouth region changes visibly"
    assert diff[: SIZE // 3].mean() < 0.5, "the top of the head does not"


@pytest.mark.parametrize("name", AVATARS)
@pytest.mark.parametrize("side", ["Left", "Right"])
def test_eye_blink_closes_the_subjects_own_eye(renderers, avatars, name, side):
    av, r = avatars[name], renderers[name]
    d = face_vertices(av.pose(weights(**{f"eyeBlink{side}": 1}))) - face_vertices(av.rest)
    moved = np.linalg.norm(d, axis=1)
    assert (moved > 1e-3).sum() > 10
    xs = face_vertices(av.rest)[:, 0]
    sign = 1 if side == "Left" else -1  # the subject's left is +X
    share = moved[sign * xs > 0].sum() / moved.sum()
    assert share > 0.95, f"eyeBlink{side} must move the subject's {side.lower()} eye ({share:.2%} of the motion)"
    assert d[moved > 1e-3, 1].mean() < -1e-3, "the upper lid comes down"
    # front view: the subject's left eye is image right
    diff = np.abs(r.render(weights(**{f"eyeBlink{side}": 1})).astype(int) - r.render().astype(int)).sum(2)
    cols = diff.sum(0)
    right_share = cols[SIZE // 2:].sum() / cols.sum()
    assert (right_share if side == "Left" else 1 - right_share) > 0.9, right_share


# -- bones -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", AVATARS)
def test_head_yaw_turns_to_the_subjects_left_and_pitch_is_chin_down(avatars, name):
    av = avatars[name]
    i = nose_tip_index(av)
    nose = bound_to(av, "Head", av.rest)[i]
    left = bound_to(av, "Head", av.pose(rotations=rotations(Head=((0, 1, 0), 20))))[i]
    right = bound_to(av, "Head", av.pose(rotations=rotations(Head=((0, 1, 0), -20))))[i]
    assert left[0] - nose[0] > 0.01 and right[0] - nose[0] < -0.01, "+yaw moves the nose toward +X (subject's left)"
    assert abs(left[1] - nose[1]) < 0.005, "a pure yaw about world Y keeps the nose's height despite the rest pitch"
    down = bound_to(av, "Head", av.pose(rotations=rotations(Head=((1, 0, 0), 20))))[i]
    assert down[1] - nose[1] < -0.01, "+pitch about X: chin down"


@pytest.mark.parametrize("name", AVATARS)
def test_rotations_are_world_axes_on_the_rest_pose_and_neck_head_compose(avatars, name):
    av = avatars[name]
    rest_head = av.rest.bone_rotation("Head")
    yaw = av.pose(rotations=rotations(Head=((0, 1, 0), 30)))
    np.testing.assert_allclose(yaw.bone_rotation("Head"), quat_to_matrix(axis_angle_quat((0, 1, 0), 30)) @ rest_head,
                               atol=1e-5)
    both = av.pose(rotations=rotations(Neck=((0, 1, 0), 12), Head=((1, 0, 0), 15)))
    expect = quat_to_matrix(axis_angle_quat((0, 1, 0), 12)) @ quat_to_matrix(axis_angle_quat((1, 0, 0), 15)) @ rest_head
    np.testing.assert_allclose(both.bone_rotation("Head"), expect, atol=1e-5)
    # the neck carries the head: the nose moves further than with the head's share alone
    i = nose_tip_index(av)
    nose = bound_to(av, "Head", av.rest)[i][0]
    head_only = bound_to(av, "Head", av.pose(rotations=rotations(Head=((0, 1, 0), 14))))[i][0]
    neck_head = bound_to(av, "Head", av.pose(rotations=rotations(Neck=((0, 1, 0), 6), Head=((0, 1, 0), 14))))[i][0]
    assert neck_head - nose > head_only - nose > 0.005


@pytest.mark.parametrize("name", AVATARS)
def test_eye_yaw_turns_the_eyes_to_the_subjects_left(avatars, name):
    av = avatars[name]
    for bone in ("LeftEye", "RightEye"):
        rest = bound_to(av, bone, av.rest)
        front = int(np.argmax(rest[:, 2]))
        turned = bound_to(av, bone, av.pose(rotations=rotations(**{bone: ((0, 1, 0), 20)})))[front]
        assert turned[0] - rest[front, 0] > 0.001, f"+yaw moves the front of {bone} toward +X"
        head = bound_to(av, "Head", av.pose(rotations=rotations(**{bone: ((0, 1, 0), 20)})))
        np.testing.assert_allclose(head, bound_to(av, "Head", av.rest), atol=1e-6)  # only the eye moves


@pytest.mark.parametrize("name", AVATARS)
def test_eye_gaze_from_bones_or_eyelook_shapes_not_both(avatars, name):
    av = avatars[name]
    rest = bound_to(av, "LeftEye", av.rest)
    front = int(np.argmax(rest[:, 2]))
    look_out = weights(eyeLookOutLeft=1)  # the left eye looks outward = to the subject's left = +X
    by_bone = rotations(LeftEye=((0, 1, 0), 20))
    # default "bones": the eyeball ignores eyeLook*, follows the bone
    assert np.abs(bound_to(av, "LeftEye", av.pose(look_out)) - rest).max() < 1e-6
    assert bound_to(av, "LeftEye", av.pose(look_out, by_bone))[front, 0] - rest[front, 0] > 0.001
    # "blendshapes": the eyeLook* shape turns the eyeball the same way, the bone is ignored
    shape = bound_to(av, "LeftEye", av.pose(look_out, eyes="blendshapes"))
    assert shape[front, 0] - rest[front, 0] > 0.001
    np.testing.assert_allclose(bound_to(av, "LeftEye", av.pose(look_out, by_bone, eyes="blendshapes")), shape,
                               atol=1e-6)
    with pytest.raises(ValueError, match="eyes must be one of"):
        av.pose(eyes="left")


# -- rendering -------------------------------------------------------------------------------------------------------
def test_render_is_deterministic_contiguous_and_frames_the_face(avatars, renderers):
    av, r = avatars["brunette-t.glb"], renderers["brunette-t.glb"]
    w, q = weights(jawOpen=0.4, mouthSmileLeft=0.7), rotations(Head=((0, 1, 0), 10), Neck=((1, 0, 0), 5))
    a, b = r.render(w, q), r.render(w, q)
    assert a.shape == (SIZE, SIZE, 3) and a.dtype == np.uint8 and a.flags["C_CONTIGUOUS"]
    with FaceRenderer(av, SIZE, SIZE) as other:
        c = other.render(w, q)
    assert np.array_equal(a, b) and np.array_equal(a, c)
    x, y = r.project(av.rest.bone_position("LeftEye")[None])[0]
    x2, _ = r.project(av.rest.bone_position("RightEye")[None])[0]
    assert SIZE / 2 < x < SIZE * 0.75 and SIZE * 0.25 < x2 < SIZE / 2 and SIZE * 0.2 < y < SIZE * 0.6
    bg = np.array(r.background) * 255
    assert np.abs(a[int(y), int(x)] - bg).sum() > 30, "the eye is drawn, not background"


def test_bad_pose_inputs(avatars):
    av = avatars["brunette-t.glb"]
    with pytest.raises(ValueError, match="52 ARKit values"):
        av.pose(np.zeros(51))
    with pytest.raises(ValueError, match="4 quaternions"):
        av.pose(rotations=np.zeros(12))
    with pytest.raises(ValueError, match="non-zero"):
        av.pose(rotations=np.zeros(16))


# -- avatar errors ---------------------------------------------------------------------------------------------------
def _tiny_glb(path, target_name: str) -> None:
    """A one-triangle glTF with one morph target (a real file in the original layout, written with pygltflib)."""
    import pygltflib as g

    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    delta = np.array([[0, 0, 0.1]] * 3, np.float32)
    blob = pos.tobytes() + delta.tobytes()
    acc = [g.Accessor(bufferView=i, componentType=g.FLOAT, count=3, type=g.VEC3, max=a.max(0).tolist(),
                      min=a.min(0).tolist()) for i, a in enumerate((pos, delta))]
    gltf = g.GLTF2(
        scene=0, scenes=[g.Scene(nodes=[0])], nodes=[g.Node(mesh=0, name="Smiley")],
        meshes=[g.Mesh(name="Smiley", extras={"targetNames": [target_name]},
                       primitives=[g.Primitive(attributes=g.Attributes(POSITION=0), targets=[{"POSITION": 1}])])],
        accessors=acc, bufferViews=[g.BufferView(buffer=0, byteOffset=0, byteLength=36),
                                    g.BufferView(buffer=0, byteOffset=36, byteLength=36)],
        buffers=[g.Buffer(byteLength=len(blob))])
    gltf.set_binary_blob(blob)
    gltf.save_binary(str(path))


def test_avatar_errors_name_the_problem(tmp_path):
    with pytest.raises(AvatarError, match="does not exist"):
        Avatar.load(tmp_path / "nope.glb")
    wav = shared_file("align/praatio_bobby.wav")
    with pytest.raises(AvatarError, match="not a glTF 2.0 file"):
        Avatar.load(wav)
    _tiny_glb(tmp_path / "smile.glb", "BigSmile")
    with pytest.raises(AvatarError, match=r"no morph targets named after the 52 ARKit.*Smiley: BigSmile"):
        Avatar.load(tmp_path / "smile.glb")
    _tiny_glb(tmp_path / "jaw.glb", "JawOpen")  # another case of the same name still drives jawOpen
    av = Avatar.load(tmp_path / "jaw.glb")
    assert av.arkit_present == ["jawOpen"] and av.bones == {}
    moved = av.pose(weights(jawOpen=0.5)).positions[0] - av.rest.positions[0]
    np.testing.assert_allclose(moved[:, 2], 0.05, atol=1e-6)


def test_gltf_json_with_data_uri_buffers_renders_like_the_glb(tmp_path, avatars):
    import pygltflib

    g = pygltflib.GLTF2().load(str(shared_file("avatars/brunette-t.glb")))
    g.convert_buffers(pygltflib.BufferFormat.DATAURI)
    g.save(str(tmp_path / "head.gltf"))
    with FaceRenderer(Avatar.load(tmp_path / "head.gltf"), 64, 64) as a, \
            FaceRenderer(avatars["brunette-t.glb"], 64, 64) as b:
        w = weights(jawOpen=0.6)
        assert np.array_equal(a.render(w), b.render(w))
    doc = json.loads((tmp_path / "head.gltf").read_text())
    doc["buffers"][0]["uri"] = "head.bin"  # an external buffer that is not there
    (tmp_path / "nobin.gltf").write_text(json.dumps(doc))
    with pytest.raises(AvatarError, match="buffer 0 file 'head.bin' is missing"):
        Avatar.load(tmp_path / "nobin.gltf")


# -- frames files ----------------------------------------------------------------------------------------------------
def _doc(frames, **kw):
    return {"format": "avatar-bridge.frames.v1", "fps": 30, "frames": frames, **kw}


def _frame(i, **kw):
    return {"index": i, "time": i / 30, "blendshapes": {"jawOpen": 0.5}, "rotations": {"Head": [0, 0, 0, 1]}, **kw}


@pytest.mark.parametrize("doc, field", [
    ({"format": "something-else", "frames": []}, "field 'format'"),
    (_doc([]), "field 'frames'"),
    (_doc([{"index": 0, "blendshapes": {}}]), r"frames\[0\].time is missing"),
    (_doc([_frame(0), _frame(1, blendshapes={"jawOpne": 1})]), r"frames\[1\].blendshapes.jawOpne is not one"),
    (_doc([_frame(0, blendshapes={"jawOpen": "x"})]), r"frames\[0\].blendshapes.jawOpen must be a finite number"),
    (_doc([_frame(0, rotations={"Hed": [0, 0, 0, 1]})]), r"frames\[0\].rotations.Hed is not a bone"),
    (_doc([_frame(0, rotations={"Head": [0, 0, 1]})]), r"frames\[0\].rotations.Head must be a list"),
    (_doc([_frame(0, rotations={"Head": [0, 0, 0, 0]})]), "rotation Head is a zero quaternion"),
    (_doc([_frame(0), _frame(1, time=0.0)]), "frame 1 has time 0.000000 s, not after frame 0"),
    (_doc([_frame(0)], fps=-30), "field 'fps' must be positive"),
])
def test_malformed_frames_json_names_the_field(tmp_path, doc, field):
    p = tmp_path / "f.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(FramesError, match=field):
        load_frames(p)


def test_malformed_frames_csv_and_non_json(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("time,index,jawOpen\n0,0,0.5\n")
    with pytest.raises(FramesError, match="header lacks column"):
        load_frames(p)
    p = tmp_path / "f.json"
    p.write_text("{not json")
    with pytest.raises(FramesError, match="not valid JSON"):
        load_frames(p)


def test_frame_schedule_places_frames_by_time_code():
    # 30 fps output; a gap repeats the previous frame, a late duplicate slot keeps the later frame
    times = np.array([0, 1, 2, 4, 4.4, 6]) / 30
    assert frame_schedule(times, 30).tolist() == [0, 1, 2, 2, 4, 4, 5]
    # 60 fps frames shown at 30 fps: the frame at each k / 30, the last one in the nearest slot
    assert frame_schedule(np.arange(6) / 60, 30).tolist() == [0, 2, 4, 5]
    # time codes on a 44.1 kHz clock (round(k * 44100 / 30) samples) land on their own slot
    assert frame_schedule(np.round(np.arange(90) * 44100 / 30) / 44100, 30).tolist() == list(range(90))


# -- end to end: animate real speech, render with audio, decode the MP4 ---------------------------------------------
def _cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "bridge_server.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_animate_then_render_mp4_with_audio(tmp_path, avatars):
    import av

    wav = shared_file("align/praatio_bobby.wav")
    frames_json, mp4 = tmp_path / "bobby.json", tmp_path / "bobby.mp4"
    r = _cli("animate", wav, "--out", frames_json)
    assert r.returncode == 0, r.stderr
    doc = json.loads(frames_json.read_text())
    n = len(doc["frames"])
    assert n == 36  # 1.19 s at 30 fps
    size = 128
    r = _cli("render", frames_json, "--avatar", shared_file("avatars/brunette-t.glb"), "--out", mp4,
             "--audio", wav, "--size", size)
    assert r.returncode == 0, r.stderr
    assert f"{n} frames" in r.stdout
    with av.open(str(mp4)) as c:
        vs, aus = c.streams.video[0], c.streams.audio
        assert vs.codec_context.name == "h264" and (vs.width, vs.height) == (size, size)
        assert len(aus) == 1 and aus[0].codec_context.name == "aac"
        video = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(video) == n
        assert float(vs.average_rate) == 30
        assert abs(float(vs.duration * vs.time_base) - n / 30) < 1e-6
    with av.open(str(mp4)) as c:
        audio_s = sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].sample_rate
    assert abs(audio_s - 1.19) < 0.06
    # the mouth region follows the driven jawOpen over time
    avatar = avatars["brunette-t.glb"]
    with FaceRenderer(avatar, size, size) as rend:
        neutral = rend.render().astype(int)
        ys, xs = box(rend, jaw_region(avatar), pad=2)
        first = rend.render(*(lambda t: (t.weights[0], t.rotations[0]))(load_frames(frames_json)))
    assert np.abs(video[0].astype(int) - first.astype(int)).mean() < 3, "frame 0 is frame 0 (up to H.264 loss)"
    change = np.array([np.abs(v.astype(int) - neutral)[ys, xs].mean() for v in video])
    jaw = np.array([f["blendshapes"]["jawOpen"] for f in doc["frames"]])
    assert change.std() > 2 and np.corrcoef(change, jaw)[0, 1] > 0.5


def _main(capsys, *args) -> tuple[int, str, str]:
    """The CLI in this process (same code path as the console script, without a new interpreter per case)."""
    from bridge_server.cli import main

    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_render_csv_to_pngs_and_errors(tmp_path, avatars, capsys):
    from PIL import Image

    # a CSV in the documented layout (docs/output_formats.md), 4 frames at 60 fps
    rot_cols = [f"{b}.{c}" for b in BONE_NAMES for c in ("qx", "qy", "qz", "qw")]
    rows = [["time", "index", "sample_index", *ARKIT_NAMES, *rot_cols]]
    for k in range(4):
        w = weights(jawOpen=k / 3)
        q = rotations(Head=((0, 1, 0), 5 * k))
        rows.append([f"{k / 60:.6f}", k, k * 800, *[f"{v:.6f}" for v in w], *[f"{v:.6f}" for v in q]])
    csv_path = tmp_path / "f.csv"
    csv_path.write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    avatar_path = shared_file("avatars/brunette-t.glb")
    rc, _, err = _main(capsys, "render", csv_path, "--avatar", avatar_path, "--png-dir", tmp_path / "png",
                       "--size", "96x64")
    assert rc == 0, err
    pngs = sorted((tmp_path / "png").glob("frame_*.png"))
    assert len(pngs) == 4, "60 fps time codes -> a 60 fps sequence"
    track = load_frames(csv_path)
    with FaceRenderer(avatars["brunette-t.glb"], 96, 64) as rend:
        assert np.array_equal(np.asarray(Image.open(pngs[3])), rend.render(track.weights[3], track.rotations[3]))

    _tiny_glb(tmp_path / "smile.glb", "BigSmile")
    (tmp_path / "bad.json").write_text(json.dumps(_doc([_frame(0, blendshapes={"jawopen": 1})])))
    out = ["--out", tmp_path / "o.mp4"]
    bad = {
        "missing avatar": ([csv_path, "--avatar", tmp_path / "none.glb", *out], "does not exist"),
        "not glTF": ([csv_path, "--avatar", csv_path, *out], "not a glTF 2.0 file"),
        "no ARKit targets": ([csv_path, "--avatar", tmp_path / "smile.glb", *out], "Smiley: BigSmile"),
        "bad frame": ([tmp_path / "bad.json", "--avatar", avatar_path, *out], "frames[0].blendshapes.jawopen"),
        "missing frames": ([tmp_path / "none.json", "--avatar", avatar_path, *out], "frames file"),
        "odd size": ([csv_path, "--avatar", avatar_path, *out, "--size", "101"], "--size must be even"),
        "no output": ([csv_path, "--avatar", avatar_path], "give --out"),
        "not mp4": ([csv_path, "--avatar", avatar_path, "--out", tmp_path / "o.avi"], "--out must be an .mp4"),
        "bad bone": ([csv_path, "--avatar", avatar_path, *out, "--bone", "Jaw=x"], "--bone must be"),
        "missing audio": ([csv_path, "--avatar", avatar_path, *out, "--audio", tmp_path / "none.wav"],
                          "audio file"),
        "not audio": ([csv_path, "--avatar", avatar_path, *out, "--audio", tmp_path / "bad.json"], "audio file"),
        "audio without video": ([csv_path, "--avatar", avatar_path, "--png-dir", tmp_path / "p2",
                                 "--audio", shared_file("align/praatio_bobby.wav")], "--audio needs --out"),
    }
    for what, (args, msg) in bad.items():
        rc, _, err = _main(capsys, "render", *args)
        assert rc == 2 and msg in err, (what, err)
    assert not (tmp_path / "o.mp4").exists() or (tmp_path / "o.mp4").stat().st_size == 0

"""Builds the console's default avatar: a stylised head made here, procedurally, with all 52 ARKit morph targets
and Head / Neck / LeftEye / RightEye nodes. It replaces any third-party avatar (none may ship).

    python console_web/make_head.py        # writes bridge_server/console/static/head.glb and console_web/src/arkit.json

Every deforming part (face skin, lips + teeth + mouth interior, tongue, lids, brows, nose) is a function of a small
set of "muscle" parameters; a morph target is geometry(rest + that shape's parameters) - geometry(rest), so each
target moves exactly the region its ARKit name describes. A mesh carries only the targets that move it (the file
stays small). Space: glTF (right-handed, Y up, metres, the head faces +Z, the subject's left is +X), the same
avatar space as the frame stream (docs/conventions.md), so bone rotations apply without any axis change.
"""
from __future__ import annotations

import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from engine.rig.arkit import ARKIT_NAMES, BONE_NAMES  # noqa: E402  (the one canonical list)

# Head-local landmarks (Head node origin = top of the neck).
FACE_C = np.array([0.0, 0.10, 0.01])
FACE_R = np.array([0.075, 0.10, 0.085])
MOUTH_Y, MOUTH_Z, MOUTH_HW = 0.058, 0.089, 0.024
EYE_Y, EYE_X, EYE_Z, EYE_R = 0.125, 0.032, 0.080, 0.0125
BROW_Y = 0.147

# Each ARKit shape = a set of muscle parameters at weight 1. Side suffix L/R = the subject's left (+X) / right.
SHAPES: dict[str, dict[str, float]] = {
    "eyeBlinkLeft": {"lidL": 1}, "eyeBlinkRight": {"lidR": 1},
    "eyeLookDownLeft": {"lidL": 0.25}, "eyeLookDownRight": {"lidR": 0.25},
    "eyeLookUpLeft": {"lidL": -0.3}, "eyeLookUpRight": {"lidR": -0.3},
    "eyeLookInLeft": {"lowLidL": 0.15}, "eyeLookInRight": {"lowLidR": 0.15},
    "eyeLookOutLeft": {"lowLidL": 0.1}, "eyeLookOutRight": {"lowLidR": 0.1},
    "eyeSquintLeft": {"lowLidL": 1, "lidL": 0.2}, "eyeSquintRight": {"lowLidR": 1, "lidR": 0.2},
    "eyeWideLeft": {"lidL": -0.6}, "eyeWideRight": {"lidR": -0.6},
    "jawForward": {"jawFwd": 1}, "jawLeft": {"jawSide": 1}, "jawRight": {"jawSide": -1}, "jawOpen": {"jaw": 1},
    "mouthClose": {"close": 1}, "mouthFunnel": {"funnel": 1}, "mouthPucker": {"pucker": 1},
    "mouthLeft": {"shift": 1}, "mouthRight": {"shift": -1},
    "mouthSmileLeft": {"smileL": 1}, "mouthSmileRight": {"smileR": 1},
    "mouthFrownLeft": {"frownL": 1}, "mouthFrownRight": {"frownR": 1},
    "mouthDimpleLeft": {"dimpleL": 1}, "mouthDimpleRight": {"dimpleR": 1},
    "mouthStretchLeft": {"stretchL": 1}, "mouthStretchRight": {"stretchR": 1},
    "mouthRollLower": {"rollLo": 1}, "mouthRollUpper": {"rollUp": 1},
    "mouthShrugLower": {"shrugLo": 1}, "mouthShrugUpper": {"shrugUp": 1},
    "mouthPressLeft": {"pressL": 1}, "mouthPressRight": {"pressR": 1},
    "mouthLowerDownLeft": {"lowerDownL": 1}, "mouthLowerDownRight": {"lowerDownR": 1},
    "mouthUpperUpLeft": {"upperUpL": 1}, "mouthUpperUpRight": {"upperUpR": 1},
    "browDownLeft": {"browDownL": 1}, "browDownRight": {"browDownR": 1}, "browInnerUp": {"browInner": 1},
    "browOuterUpLeft": {"browOuterL": 1}, "browOuterUpRight": {"browOuterR": 1},
    "cheekPuff": {"puff": 1}, "cheekSquintLeft": {"cheekL": 1}, "cheekSquintRight": {"cheekR": 1},
    "noseSneerLeft": {"sneerL": 1}, "noseSneerRight": {"sneerR": 1}, "tongueOut": {"tongue": 1},
}
assert set(SHAPES) == set(ARKIT_NAMES), "SHAPES must cover exactly the ARKit names"


class P(dict):
    """Muscle parameters; a missing one reads 0."""

    def __getattr__(self, k):
        return self.get(k, 0.0)

    def __missing__(self, k):
        return 0.0


def smooth(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def gauss(p, c, s):
    d = (p - np.asarray(c)) / np.asarray(s)
    return np.exp(-0.5 * (d * d).sum(axis=-1))


def grid(nu, nv, closed_u=False):
    """Triangles of an nu x nv vertex grid (row-major, u fastest)."""
    tris = []
    cols = nu if closed_u else nu - 1
    for j in range(nv - 1):
        for i in range(cols):
            a, b = j * nu + i, j * nu + (i + 1) % nu
            c, d = a + nu, b + nu
            tris += [(a, c, b), (b, c, d)]
    return np.array(tris, np.uint16)


def ellipsoid(c, r, nu=40, nv=28, th=(0.0, np.pi)):
    th = np.linspace(th[0], th[1], nv)
    ph = np.linspace(0, 2 * np.pi, nu, endpoint=False)
    T, PH = np.meshgrid(th, ph, indexing="ij")
    d = np.stack([np.sin(T) * np.sin(PH), np.cos(T), np.sin(T) * np.cos(PH)], -1).reshape(-1, 3)
    return np.asarray(c) + d * np.asarray(r), grid(nu, nv, closed_u=True)


# ------------------------------------------------------------------ parts: rest geometry + deformation by muscles

def face_base():
    v, t = ellipsoid(FACE_C, FACE_R, 44, 32)
    # The mouth sits in a shallow recess so the lips and the dark interior show in front of the skin.
    v[:, 2] -= 0.013 * gauss(v, (0, MOUTH_Y, 0.09), (0.022, 0.007, 1.0)) * (v[:, 2] > 0)
    return v, t


def face_deform(v, p: P):
    out = v.copy()
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    front = smooth(0.0, 0.05, z)
    jaw_w = smooth(MOUTH_Y + 0.004, MOUTH_Y - 0.014, y) * front * (1 - smooth(0.045, 0.075, np.abs(x)))
    drop = 0.026 * p.jaw - 0.010 * p.close
    out[:, 1] -= drop * jaw_w
    out[:, 2] += (0.008 * p.jawFwd - 0.005 * p.jaw) * jaw_w
    out[:, 0] += 0.007 * p.jawSide * jaw_w
    around = gauss(v, (0, MOUTH_Y, 0.09), (0.03, 0.014, 1.0)) * front
    out[:, 0] += 0.010 * p.shift * around
    for s, sx in (("L", 1), ("R", -1)):
        cheek = gauss(v, (sx * 0.045, MOUTH_Y + 0.012, 0.06), (0.014, 0.012, 0.03))
        out[:, 0] += sx * 0.013 * p.puff * cheek
        out[:, 2] += 0.006 * p.puff * cheek
        sq = gauss(v, (sx * 0.038, EYE_Y - 0.026, 0.075), (0.014, 0.008, 0.03))
        out[:, 1] += (0.006 * p["cheek" + s] + 0.004 * p["smile" + s]) * sq
    return out


def lip_curves(p: P, u):
    """Centre lines and thickness of the upper and lower lip across the mouth (u = -1 right corner .. +1 left)."""
    side = {k: np.where(u > 0, p[k + "L"], p[k + "R"]) for k in
            ("smile", "frown", "dimple", "stretch", "press", "lowerDown", "upperUp")}
    c = u * u  # corner weight
    mid = 1 - c
    hw = MOUTH_HW * (1 + 0.3 * side["stretch"] + 0.18 * side["smile"] + 0.08 * side["dimple"]
                     - 0.38 * p.pucker - 0.3 * p.funnel)
    x = u * hw + 0.011 * p.shift
    corner = c * (0.010 * side["smile"] - 0.008 * side["frown"] - 0.003 * side["stretch"])
    drop = (0.026 * p.jaw - 0.012 * p.close) * (1 - 0.55 * c)
    yu = MOUTH_Y + 0.0035 * mid + corner + mid * (0.006 * side["upperUp"] + 0.003 * p.shrugUp) \
        + 0.004 * p.funnel * mid
    yl = MOUTH_Y - 0.004 * mid + corner - drop + mid * (-0.008 * side["lowerDown"] + 0.004 * p.shrugLo) \
        - 0.006 * p.funnel * mid
    zb = MOUTH_Z - 2.4 * x * x + 0.013 * p.pucker * mid + 0.010 * p.funnel * mid - 0.004 * side["dimple"] * c
    zu = zb
    zl = zb + (0.008 * p.jawFwd - 0.005 * p.jaw) * (1 - 0.5 * c)
    xl = x + 0.007 * p.jawSide * (1 - 0.5 * c)
    taper = 0.25 + 0.75 * np.sqrt(np.clip(mid, 0, 1))
    tu = 0.006 * taper * (1 - 0.7 * p.rollUp - 0.3 * side["press"])
    tl = 0.007 * taper * (1 - 0.7 * p.rollLo - 0.3 * side["press"])
    return (x, yu, zu, tu), (xl, yl, zl, tl)


NU_LIP, NV_LIP = 25, 10
U = np.linspace(-1, 1, NU_LIP)


def lips_geom(p: P):
    """Upper lip tube, lower lip tube, upper teeth band and the dark interior: four vertex blocks."""
    (xu, yu, zu, tu), (xl, yl, zl, tl) = lip_curves(p, U)
    ang = np.linspace(0, 2 * np.pi, NV_LIP, endpoint=False)
    blocks = []
    for x, y, z, t in ((xu, yu, zu, tu), (xl, yl, zl, tl)):
        ring = np.stack([np.zeros_like(ang), np.cos(ang), np.sin(ang)], -1)  # cross-section in the y/z plane
        pts = np.empty((NV_LIP, NU_LIP, 3))
        pts[..., 0] = x[None, :]
        pts[..., 1] = y[None, :] + ring[:, 1:2] * t[None, :] / 2
        pts[..., 2] = z[None, :] + ring[:, 2:3] * 0.0028 * (t[None, :] / 0.006)
        blocks.append(pts.reshape(-1, 3))
    up_edge, lo_edge = yu - tu / 2, yl + tl / 2
    teeth = np.stack([np.stack([xu * 0.9, up_edge + 0.001, zu - 0.004], -1),
                      np.stack([xu * 0.9, up_edge - 0.0045 * (1 - U * U), zu - 0.004], -1)])
    blocks.append(teeth.reshape(-1, 3))
    inner = np.stack([np.stack([xu, up_edge + 0.001, zu - 0.006], -1),
                      np.stack([(xu + xl) / 2, (up_edge + lo_edge) / 2, (zu + zl) / 2 - 0.012], -1),
                      np.stack([xl, lo_edge - 0.001, zl - 0.006], -1)])
    blocks.append(inner.reshape(-1, 3))
    return blocks


def lips_tris():
    tube = []
    for j in range(NV_LIP):
        for i in range(NU_LIP - 1):
            a, b = j * NU_LIP + i, j * NU_LIP + i + 1
            c, d = ((j + 1) % NV_LIP) * NU_LIP + i, ((j + 1) % NV_LIP) * NU_LIP + i + 1
            tube += [(a, b, c), (b, d, c)]
    return np.array(tube, np.uint16), grid(NU_LIP, 2), grid(NU_LIP, 3)


def tongue_geom(p: P):
    v, t = ellipsoid((0, 0, 0), (0.013, 0.004, 0.015), 16, 10)
    drop = 0.026 * p.jaw * 0.7
    c = np.array([0.0, MOUTH_Y - 0.007 - drop - 0.005 * p.tongue, MOUTH_Z - 0.022 + 0.03 * p.tongue])
    return v + c, t


def lid_geom(p: P, side: str):
    """Upper and lower lid: shells just outside the eyeball, from the pole to the lid edge (angles from +Y)."""
    sx = 1 if side == "L" else -1
    c = np.array([sx * EYE_X, EYE_Y, EYE_Z])
    up_edge = np.radians(62 + 52 * p["lid" + side])
    lo_edge = np.radians(128 - 26 * p["lowLid" + side] + 10 * p["lid" + side])
    ph = np.linspace(-np.pi * 0.55, np.pi * 0.55, 18)
    out = []
    for th0, th1 in ((0.15, up_edge), (np.pi - 0.15, lo_edge)):
        th = np.linspace(th0, th1, 8)
        T, PH = np.meshgrid(th, ph, indexing="ij")
        d = np.stack([np.sin(T) * np.sin(PH), np.cos(T), np.sin(T) * np.cos(PH)], -1).reshape(-1, 3)
        out.append(c + d * EYE_R * 1.12)
    return out, grid(18, 8)


def brow_geom(p: P, side: str):
    sx = 1 if side == "L" else -1
    n = 10
    s = np.linspace(0, 1, n)  # 0 = inner end, 1 = outer end
    x = sx * (0.012 + 0.040 * s)
    y = BROW_Y + 0.004 * np.sin(np.pi * s) - 0.003 * s
    y = y - 0.006 * p["browDown" + side] + 0.008 * p.browInner * (1 - s) ** 1.5 + 0.008 * p["browOuter" + side] * s
    x = x - sx * 0.004 * p["browDown" + side] * (1 - s)
    z = FACE_C[2] + FACE_R[2] * np.sqrt(np.clip(1 - (x / FACE_R[0]) ** 2 - ((y - FACE_C[1]) / FACE_R[1]) ** 2,
                                               0.05, 1)) + 0.002
    prof = np.array([(0.0025, 0.0), (0.0, 0.002), (-0.0025, 0.0), (0.0, -0.001)])  # (dy, dz) around the bar
    pts = np.stack([np.stack([x, y + dy, z + dz], -1) for dy, dz in prof])
    tris = []
    for j in range(4):
        for i in range(n - 1):
            a, b = j * n + i, j * n + i + 1
            c, d = ((j + 1) % 4) * n + i, ((j + 1) % 4) * n + i + 1
            tris += [(a, b, c), (b, d, c)]
    return pts.reshape(-1, 3), np.array(tris, np.uint16)


def nose_geom(p: P):
    v, t = ellipsoid((0, 0, 0), (0.011, 0.021, 0.013), 20, 14)
    base = np.array([0.0, 0.094, 0.084])
    w = smooth(0.0, -0.012, v[:, 1])
    v = v.copy()
    v[:, 1] += 0.005 * w * (p.sneerL * smooth(0, 0.006, v[:, 0]) + p.sneerR * smooth(0, -0.006, v[:, 0]))
    v[:, 0] += 0.002 * w * (p.sneerL * (v[:, 0] > 0) - p.sneerR * (v[:, 0] < 0))
    return v + base, t


def eye_geom():
    """Eyeball around its own centre (the eye node): white, and an iris cap facing +Z."""
    v, t = ellipsoid((0, 0, 0), (EYE_R,) * 3, 24, 18)
    # rotate so the poles lie on Z: the first rows (theta small) become the front (+Z)
    v = np.stack([v[:, 0], -v[:, 2], v[:, 1]], -1)
    rows_iris = 3
    cut = rows_iris * 24
    iris = t[(t < cut + 24).all(axis=1) & (t < cut).any(axis=1)]
    white = t[~((t < cut + 24).all(axis=1) & (t < cut).any(axis=1))]
    return v, iris, white


def hair_geom():
    v, t = ellipsoid(FACE_C + [0, 0.004, -0.006], FACE_R * 1.05, 40, 28)
    y, z = v[:, 1] - FACE_C[1], v[:, 2] - FACE_C[2]
    keep = (y > 0.058 - 0.05 * smooth(0.0, -0.05, z)) | ((z < -0.03) & (y > -0.07))
    tk = t[keep[t].all(axis=1)]
    used = np.unique(tk)
    remap = -np.ones(len(v), int)
    remap[used] = np.arange(len(used))
    return v[used], remap[tk].astype(np.uint16)


# ------------------------------------------------------------------ glTF writer

class Glb:
    def __init__(self):
        self.bin = bytearray()
        self.g = {"asset": {"version": "2.0", "generator": "avatar-bridge console_web/make_head.py"},
                  "buffers": [], "bufferViews": [], "accessors": [], "meshes": [], "nodes": [],
                  "materials": [], "scenes": [{"nodes": [0]}], "scene": 0}

    def acc(self, arr, kind, target=None, minmax=False):
        arr = np.ascontiguousarray(arr)
        while len(self.bin) % 4:
            self.bin.append(0)
        view = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": arr.nbytes}
        if target:
            view["target"] = target
        self.bin += arr.tobytes()
        self.g["bufferViews"].append(view)
        ctype = {np.dtype(np.float32): 5126, np.dtype(np.uint16): 5123}[arr.dtype]
        a = {"bufferView": len(self.g["bufferViews"]) - 1, "componentType": ctype,
             "count": int(arr.shape[0]), "type": kind}
        if minmax:
            a["min"] = [float(m) for m in arr.min(axis=0)]
            a["max"] = [float(m) for m in arr.max(axis=0)]
        self.g["accessors"].append(a)
        return len(self.g["accessors"]) - 1

    def material(self, name, rgb, rough=0.65, double=False):
        self.g["materials"].append({"name": name, "doubleSided": double, "pbrMetallicRoughness": {
            "baseColorFactor": [*rgb, 1.0], "metallicFactor": 0.0, "roughnessFactor": rough}})
        return len(self.g["materials"]) - 1

    def mesh(self, name, prims, targets: dict[str, list] | None = None):
        """prims: [(positions, triangles, material)]; targets: name -> one delta array per primitive."""
        targets = targets or {}
        out = []
        for k, (v, t, m) in enumerate(prims):
            v = v.astype(np.float32)
            prim = {"attributes": {"POSITION": self.acc(v, "VEC3", 34962, True),
                                   "NORMAL": self.acc(normals(v, t), "VEC3", 34962)},
                    "indices": self.acc(t.reshape(-1).astype(np.uint16), "SCALAR", 34963), "material": m}
            if targets:
                prim["targets"] = [{"POSITION": self.acc(d[k].astype(np.float32), "VEC3", 34962, True)}
                                   for d in targets.values()]
            out.append(prim)
        mesh = {"name": name, "primitives": out}
        if targets:
            mesh["weights"] = [0.0] * len(targets)
            mesh["extras"] = {"targetNames": list(targets)}
        self.g["meshes"].append(mesh)
        return len(self.g["meshes"]) - 1

    def node(self, name, translation=(0, 0, 0), mesh=None, children=()):
        n = {"name": name, "translation": [float(x) for x in translation]}
        if mesh is not None:
            n["mesh"] = mesh
        if children:
            n["children"] = list(children)
        self.g["nodes"].append(n)
        return len(self.g["nodes"]) - 1

    def bytes(self) -> bytes:
        while len(self.bin) % 4:
            self.bin.append(0)
        self.g["buffers"] = [{"byteLength": len(self.bin)}]
        js = json.dumps(self.g, separators=(",", ":")).encode()
        js += b" " * (-len(js) % 4)
        return (struct.pack("<III", 0x46546C67, 2, 12 + 8 + len(js) + 8 + len(self.bin))
                + struct.pack("<II", len(js), 0x4E4F534A) + js
                + struct.pack("<II", len(self.bin), 0x004E4942) + bytes(self.bin))


def normals(v, t):
    n = np.zeros_like(v)
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    fn = np.cross(b - a, c - a)
    for k in range(3):
        np.add.at(n, t[:, k], fn)
    return (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def targets_for(fn, names, eps=1e-6):
    """name -> per-primitive deltas, keeping only the shapes that move this part."""
    rest = fn(P())
    out = {}
    for name in names:
        moved = fn(P(SHAPES[name]))
        deltas = [m - r for m, r in zip(moved, rest)]
        if max(float(np.abs(d).max()) for d in deltas) > eps:
            out[name] = deltas
    return rest, out


def build() -> bytes:
    g = Glb()
    skin = g.material("skin", (0.93, 0.74, 0.62))
    lipm = g.material("lips", (0.72, 0.33, 0.33))
    inner = g.material("mouth", (0.16, 0.04, 0.05), double=True)
    teeth = g.material("teeth", (0.95, 0.94, 0.88), rough=0.4, double=True)
    tongue = g.material("tongue", (0.85, 0.40, 0.42))
    white = g.material("eyeWhite", (0.97, 0.97, 0.95), rough=0.3)
    iris = g.material("iris", (0.16, 0.30, 0.52), rough=0.3)
    lidm = g.material("lids", (0.90, 0.70, 0.59), double=True)
    brow = g.material("brows", (0.25, 0.16, 0.10))
    hair = g.material("hair", (0.22, 0.14, 0.09), rough=0.8)
    shirt = g.material("shirt", (0.25, 0.38, 0.55), rough=0.8)

    fv, ft = face_base()
    _, face_t = targets_for(lambda p: [face_deform(fv, p)], ARKIT_NAMES)
    face = g.mesh("Face", [(fv, ft, skin)], face_t)

    tube, band, fan = lips_tris()
    rest, lip_t = targets_for(lips_geom, ARKIT_NAMES)
    lips = g.mesh("Mouth", [(rest[0], tube, lipm), (rest[1], tube, lipm), (rest[2], band, teeth),
                            (rest[3], fan, inner)], lip_t)

    tv, tt = tongue_geom(P())
    rest, ton_t = targets_for(lambda p: [tongue_geom(p)[0]], ARKIT_NAMES)
    tng = g.mesh("Tongue", [(tv, tt, tongue)], ton_t)

    nv, nt = nose_geom(P())
    _, nose_t = targets_for(lambda p: [nose_geom(p)[0]], ARKIT_NAMES)
    nose = g.mesh("Nose", [(nv, nt, skin)], nose_t)

    lid_meshes, brow_meshes = [], []
    for side in ("L", "R"):
        (up, lo), lt = lid_geom(P(), side)
        _, t = targets_for(lambda p: lid_geom(p, side)[0], ARKIT_NAMES)
        lid_meshes.append(g.mesh(f"Lids{side}", [(up, lt, lidm), (lo, lt, lidm)], t))
        bv, bt = brow_geom(P(), side)
        _, t = targets_for(lambda p: [brow_geom(p, side)[0]], ARKIT_NAMES)
        brow_meshes.append(g.mesh(f"Brow{side}", [(bv, bt, brow)], t))

    ev, e_iris, e_white = eye_geom()
    eye = g.mesh("Eyeball", [(ev, e_white, white), (ev, e_iris, iris)])
    hv, ht = hair_geom()
    hair_m = g.mesh("Hair", [(hv, ht, hair)])
    neck_v, neck_t = ellipsoid((0, 0.0, -0.005), (0.047, 0.08, 0.045), 24, 12)
    neck_m = g.mesh("NeckSkin", [(neck_v, neck_t, skin)])
    body_v, body_t = ellipsoid((0, -0.17, -0.01), (0.19, 0.11, 0.1), 32, 18)
    body_m = g.mesh("Body", [(body_v, body_t, shirt)])

    # Node 0 must be the root (scene.nodes = [0]): reserve it, then fill in its children.
    g.g["nodes"].append({})
    eye_l = g.node("LeftEye", (EYE_X, EYE_Y, EYE_Z), mesh=eye)
    eye_r = g.node("RightEye", (-EYE_X, EYE_Y, EYE_Z), mesh=eye)
    parts = [g.node(n, mesh=m) for n, m in (("FaceMesh", face), ("MouthMesh", lips), ("TongueMesh", tng),
                                              ("NoseMesh", nose), ("LidsLMesh", lid_meshes[0]),
                                              ("LidsRMesh", lid_meshes[1]), ("BrowLMesh", brow_meshes[0]),
                                              ("BrowRMesh", brow_meshes[1]), ("HairMesh", hair_m))]
    head = g.node("Head", (0, 0.085, 0), children=[eye_l, eye_r, *parts])
    neck_mesh = g.node("NeckMesh", mesh=neck_m)
    neck = g.node("Neck", (0, 0.0, 0), children=[head, neck_mesh])
    body = g.node("BodyMesh", mesh=body_m)
    g.g["nodes"][0] = {"name": "AvatarRoot", "translation": [0, 0, 0], "children": [neck, body]}
    names = {n.get("name") for n in g.g["nodes"]}
    assert all(b in names for b in BONE_NAMES)
    found = set()
    for m in g.g["meshes"]:
        found.update(m.get("extras", {}).get("targetNames", []))
    missing = [n for n in ARKIT_NAMES if n not in found]
    assert not missing, f"shapes that move nothing: {missing}"
    return g.bytes()


def main() -> int:
    out = os.path.join(ROOT, "bridge_server", "console", "static", "head.glb")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    data = build()
    with open(out, "wb") as fh:
        fh.write(data)
    names = os.path.join(ROOT, "console_web", "src", "arkit.json")
    os.makedirs(os.path.dirname(names), exist_ok=True)
    with open(names, "w") as fh:
        json.dump({"blendshapes": list(ARKIT_NAMES), "bones": list(BONE_NAMES)}, fh, indent=1)
        fh.write("\n")
    print(f"{out}: {len(data)} bytes; {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

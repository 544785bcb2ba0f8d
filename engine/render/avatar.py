"""A rigged glTF avatar posed by a frame: ARKit-52 weights on its morph targets, rotations on its head bones.

Posing is plain numpy (trimesh drops morph deltas and skin weights): morph deltas are applied as one matrix
product per primitive, then linear-blend skinning with the skin's joint matrices (global joint transform times
inverse bind matrix, as the glTF spec defines it).

Rotation convention (docs/conventions.md): each bone quaternion is a rotation in avatar space (right-handed,
Y up, subject faces +Z, its left is +X) applied on top of the bone's rest pose. A bone's local rotation is
therefore conjugated by its parent's *rest* global rotation, so that e.g. +Y always means "turn to the subject's
left" even though an RPM Head joint rests pitched by ~8 degrees; Neck and Head compose (head world rotation =
q_neck * q_head * rest).
"""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from engine.render.gltf import AvatarError, GltfFile
from engine.render.transforms import rotation_part, trs_matrix
from engine.rig.arkit import ARKIT_INDEX as NAME_INDEX
from engine.rig.arkit import ARKIT_NAMES, BONE_NAMES, NUM_BLENDSHAPES, NUM_BONES

# Bone name lookup, first match wins, after an explicit bone_map and a VRM humanoid table (if the file has one).
# Ready Player Me / TalkingHead exports: Head, Neck, LeftEye, RightEye. VRoid/VRM exports: J_Bip_C_Head,
# J_Bip_C_Neck, J_Adj_L_FaceEye, J_Adj_R_FaceEye. Mixamo: mixamorig:Head ... . Character Creator: CC_Base_*.
BONE_ALIASES: dict[str, tuple[str, ...]] = {
    "Head": ("Head", "J_Bip_C_Head", "mixamorig:Head", "CC_Base_Head", "head", "DEF-head", "Bip01_Head"),
    "Neck": ("Neck", "J_Bip_C_Neck", "mixamorig:Neck", "CC_Base_NeckTwist01", "neck", "DEF-neck", "Bip01_Neck"),
    "LeftEye": ("LeftEye", "J_Adj_L_FaceEye", "mixamorig:LeftEye", "CC_Base_L_Eye", "eye.L", "Eye_L", "leftEye"),
    "RightEye": ("RightEye", "J_Adj_R_FaceEye", "mixamorig:RightEye", "CC_Base_R_Eye", "eye.R", "Eye_R", "rightEye"),
}
# When an avatar has no sculpted ARKit shape for a name, a shape of its own that does the same job stands in
# (first found wins). VRoid exports often carry an empty jawOpen: VRoid's "A" mouth opens the jaw.
ARKIT_FALLBACKS: dict[str, tuple[str, ...]] = {
    "jawOpen": ("Fcl_MTH_A", "viseme_aa", "A", "vrc.v_aa"),
}
FALLBACK_LOWER = {alt.lower(): name for name, alts in ARKIT_FALLBACKS.items() for alt in alts}
EYE_LOOK = np.array([ARKIT_NAMES.index(n) for n in ARKIT_NAMES if n.startswith("eyeLook")])
EYE_MODES = ("bones", "blendshapes", "both")
VRM_BONES = {"Head": "head", "Neck": "neck", "LeftEye": "leftEye", "RightEye": "rightEye"}


@dataclasses.dataclass
class Primitive:
    """One triangle primitive of one mesh node, with what posing needs precomputed."""

    mesh_name: str
    node: int
    material: int | None
    positions: np.ndarray            # (V, 3) float32, mesh space
    normals: np.ndarray              # (V, 3) float32
    uvs: np.ndarray                  # (V, 2) float32, glTF convention (v down)
    indices: np.ndarray              # (3T,) uint32
    skin: int | None = None
    joints: np.ndarray | None = None   # (V, 4) indices into the primitive's own `joint_nodes`
    weights: np.ndarray | None = None  # (V, 4) float32, rows sum to 1
    joint_nodes: np.ndarray | None = None   # node index of each joint the primitive uses
    joint_ibm: np.ndarray | None = None     # (J, 4, 4) inverse bind matrices of those joints
    arkit_index: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))  # (K,)
    dpos: np.ndarray | None = None   # (K, V*3) morph position deltas for those ARKit names
    dnrm: np.ndarray | None = None   # (K, V*3) morph normal deltas (zeros if the file has none)
    dynamic: bool = True             # False: nothing a frame drives touches it, pose once
    eye_bound: bool = False          # mostly skinned to LeftEye/RightEye: an eyeball (or iris) primitive
    spare: dict = dataclasses.field(default_factory=dict)  # fallback shapes: name -> (arkit name, dpos, dnrm)


@dataclasses.dataclass
class Pose:
    """A posed avatar: world-space positions and normals of every primitive, global node transforms."""

    positions: list[np.ndarray]
    normals: list[np.ndarray]
    globals: np.ndarray              # (nodes, 4, 4)
    avatar: "Avatar"

    def mesh_positions(self, name: str) -> np.ndarray:
        """World positions of every primitive of the mesh (or mesh node) called `name`, concatenated."""
        parts = [p for p, prim in zip(self.positions, self.avatar.primitives)
                 if name in (prim.mesh_name, self.avatar.node_names[prim.node])]
        if not parts:
            raise KeyError(f"no mesh named {name!r}; meshes: {sorted(self.avatar.mesh_names)}")
        return np.concatenate(parts)

    def bone_position(self, bone: str) -> np.ndarray:
        return self.globals[self.avatar.bones[bone], :3, 3].copy()

    def bone_rotation(self, bone: str) -> np.ndarray:
        return rotation_part(self.globals[self.avatar.bones[bone]])


class Avatar:
    """A glTF avatar ready to pose. ``Avatar.load(path)``; then ``pose(weights, rotations)``."""

    def __init__(self, path: pathlib.Path, gltf: GltfFile, bone_map: dict[str, str] | None = None):
        self.path = path
        self.file = gltf
        g = gltf.gltf
        self.node_names = [n.name or f"node{i}" for i, n in enumerate(g.nodes)]
        self.parents = np.full(len(g.nodes), -1, np.int64)
        for i, n in enumerate(g.nodes):
            for c in n.children or []:
                if not (isinstance(c, int) and 0 <= c < len(g.nodes)) or c == i or self.parents[c] >= 0:
                    raise AvatarError(f"avatar file {path} has a broken node tree: node {i} lists child {c!r}, which "
                                      "is not a node, itself, or already another node's child; re-export it")
                self.parents[c] = i
        self.order = self._topological_order()
        self.rest_local = np.stack([self._local_matrix(n) for n in g.nodes]) if g.nodes else np.zeros((0, 4, 4))
        self.rest_global = self._globals(self.rest_local)
        self.bones = self._find_bones(bone_map or {})
        # per bone: the parent's rest global rotation P; a world-axes rotation Q is P^T Q P in the parent's frame
        self._parent_rot = {b: (rotation_part(self.rest_global[self.parents[n]]) if self.parents[n] >= 0 else np.eye(3))
                            for b, n in self.bones.items()}
        self.primitives: list[Primitive] = []
        self.mesh_names: set[str] = set()
        self.morph_names: dict[str, list[str]] = {}
        self._load_primitives()
        self.fallbacks_used: dict[str, str] = {}
        self._apply_fallbacks()
        self.arkit_present = sorted({ARKIT_NAMES[k] for p in self.primitives for k in p.arkit_index},
                                    key=ARKIT_NAMES.index)
        self._mark_dynamic()
        self._rest = None
        self._rest = self.pose()

    # -- loading -------------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | pathlib.Path, bone_map: dict[str, str] | None = None,
             require_arkit: bool = True) -> "Avatar":
        """Load a .glb/.gltf avatar. bone_map overrides the bone lookup, e.g. {"Head": "mixamorig:Head"}.

        Raises AvatarError (a ValueError) when the file is missing, not glTF 2.0, needs an unsupported extension,
        or (with require_arkit) has no morph target named after any ARKit blendshape."""
        path = pathlib.Path(path)
        try:
            av = cls(path, GltfFile(path), bone_map)
        except AvatarError:
            raise
        except (IndexError, KeyError, TypeError, ValueError, AttributeError, OverflowError, ZeroDivisionError) as exc:
            # an index past its array, a wrong type or shape in the JSON, a view shorter than its accessor, ...
            raise AvatarError(f"avatar file {path} is damaged or not valid glTF 2.0 ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); re-export it (Blender's glTF exporter, or "
                              f"`gltf-transform copy in.glb out.glb`)") from None
        if not av.primitives:
            raise AvatarError(f"avatar {path} has no triangle meshes in its scene")
        if require_arkit and not av.arkit_present:
            have = "; ".join(f"{m}: {', '.join(n[:12])}{' ...' if len(n) > 12 else ''} ({len(n)})" if n
                             else f"{m}: none" for m, n in sorted(av.morph_names.items()))
            raise AvatarError(f"avatar {path} has no morph targets named after the 52 ARKit blendshapes "
                              f"(e.g. jawOpen, eyeBlinkLeft), so frames cannot drive its face. Its meshes' morph "
                              f"targets: {have}. Export the avatar with ARKit blendshapes (Ready Player Me: "
                              f"?morphTargets=ARKit; VRoid: add the 52 ARKit shapes, e.g. with HANA_Tool)")
        return av

    def _topological_order(self) -> list[int]:
        order, stack = [], [i for i in range(len(self.parents)) if self.parents[i] < 0][::-1]
        children = [self.file.gltf.nodes[i].children or [] for i in range(len(self.parents))]
        seen = set()
        while stack:
            i = stack.pop()
            if i in seen:  # unreachable after the parent check in __init__; guards against a loop forever
                raise AvatarError(f"avatar file {self.path} has a cycle in its node tree at node {i}; re-export it")
            seen.add(i)
            order.append(i)
            stack.extend(reversed(children[i]))
        if len(order) < len(self.parents):  # nodes that are each other's ancestors are reached from no root
            loop = sorted(set(range(len(self.parents))) - seen)
            raise AvatarError(f"avatar file {self.path} has a cycle in its node tree (nodes {loop[:8]}); re-export it")
        return order

    @staticmethod
    def _local_matrix(node) -> np.ndarray:
        if node.matrix is not None and len(node.matrix) == 16:
            return np.asarray(node.matrix, np.float64).reshape(4, 4).T  # column-major
        return trs_matrix(node.translation, node.rotation, node.scale)

    def _globals(self, local: np.ndarray) -> np.ndarray:
        out = np.empty_like(local)
        for i in self.order:
            p = self.parents[i]
            out[i] = local[i] if p < 0 else out[p] @ local[i]
        return out

    def _find_bones(self, bone_map: dict[str, str]) -> dict[str, int]:
        g = self.file.gltf
        joints = {j for s in g.skins or [] for j in s.joints}
        by_name: dict[str, list[int]] = {}
        for i, n in enumerate(self.node_names):
            by_name.setdefault(n, []).append(i)

        def pick(name: str) -> int | None:
            hits = by_name.get(name) or [i for n, ids in by_name.items() if n.lower() == name.lower() for i in ids]
            hits = sorted(hits, key=lambda i: i not in joints)  # prefer skin joints over same-named mesh nodes
            return hits[0] if hits else None

        vrm = self._vrm_humanoid()
        bones = {}
        for bone in BONE_NAMES:
            if bone in bone_map:
                node = pick(bone_map[bone])
                if node is None:
                    raise AvatarError(f"avatar {self.path}: bone_map[{bone!r}] = {bone_map[bone]!r} names no node")
            elif bone in vrm:
                node = vrm[bone]
            else:
                node = next((n for n in map(pick, BONE_ALIASES[bone]) if n is not None), None)
            if node is not None:
                bones[bone] = node
        return bones

    def _vrm_humanoid(self) -> dict[str, int]:
        ext = self.file.gltf.extensions or {}
        out = {}
        if "VRMC_vrm" in ext:  # VRM 1.0
            hb = ext["VRMC_vrm"].get("humanoid", {}).get("humanBones", {})
            out = {b: hb[v]["node"] for b, v in VRM_BONES.items() if v in hb}
        elif "VRM" in ext:  # VRM 0.x
            hb = {h.get("bone"): h.get("node") for h in ext["VRM"].get("humanoid", {}).get("humanBones", [])}
            out = {b: hb[v] for b, v in VRM_BONES.items() if hb.get(v) is not None}
        return out

    def _load_primitives(self) -> None:
        g, f = self.file.gltf, self.file
        lower = {n.lower(): i for i, n in enumerate(ARKIT_NAMES)}
        for node_index in self.order:
            node = g.nodes[node_index]
            if node.mesh is None:
                continue
            mesh = g.meshes[node.mesh]
            mesh_name = mesh.name or f"mesh{node.mesh}"
            self.mesh_names.add(mesh_name)
            names = list((mesh.extras or {}).get("targetNames") or [])
            self.morph_names[mesh_name] = names
            skin = g.skins[node.skin] if node.skin is not None else None
            ibm_all = (f.accessor(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1).astype(np.float64)
                       if skin is not None and skin.inverseBindMatrices is not None
                       else (np.tile(np.eye(4), (len(skin.joints), 1, 1)) if skin is not None else None))
            for prim in mesh.primitives:
                if prim.mode not in (None, 4):  # only TRIANGLES; points/lines/strips are not face geometry
                    continue
                a = prim.attributes
                pos = f.accessor(a.POSITION).astype(np.float32)
                nv = len(pos)
                idx = (f.accessor(prim.indices, as_float=False).reshape(-1).astype(np.uint32)
                       if prim.indices is not None else np.arange(nv, dtype=np.uint32))
                nrm = (f.accessor(a.NORMAL).astype(np.float32) if a.NORMAL is not None
                       else _vertex_normals(pos, idx))
                uv = (f.accessor(a.TEXCOORD_0).astype(np.float32) if a.TEXCOORD_0 is not None
                      else np.zeros((nv, 2), np.float32))
                p = Primitive(mesh_name, node_index, prim.material, pos, nrm, uv, idx)
                if skin is not None and a.JOINTS_0 is not None and a.WEIGHTS_0 is not None:
                    joints = f.accessor(a.JOINTS_0, as_float=False).astype(np.int64)
                    weights = f.accessor(a.WEIGHTS_0).astype(np.float32)
                    weights /= np.maximum(weights.sum(1, keepdims=True), 1e-8)
                    used, local = np.unique(joints, return_inverse=True)
                    p.skin, p.joints, p.weights = node.skin, local.reshape(joints.shape), weights
                    p.joint_nodes = np.asarray(skin.joints, np.int64)[used]
                    p.joint_ibm = ibm_all[used]
                prim_names = names or list((prim.extras or {}).get("targetNames") or [])
                if prim.targets and not names and prim_names:
                    self.morph_names[mesh_name] = prim_names
                ks, dps, dns, spare = [], [], [], {}
                for t, target in enumerate(prim.targets or []):
                    if t >= len(prim_names) or "POSITION" not in target:
                        continue
                    key = prim_names[t].lower()
                    k = lower.get(key)  # exact ARKit camelCase, or the same name in any case
                    fallback_for = FALLBACK_LOWER.get(key)
                    if k is None and fallback_for is None:
                        continue
                    dp = f.accessor(target["POSITION"]).reshape(-1)
                    if not np.any(dp):  # exporters leave unsculpted shapes as all-zero targets: not "present"
                        continue
                    dn = (f.accessor(target["NORMAL"]).reshape(-1) if "NORMAL" in target
                          else np.zeros(nv * 3, np.float32))
                    if k is not None:
                        ks.append(k), dps.append(dp), dns.append(dn)
                    else:
                        spare[prim_names[t]] = (fallback_for, dp, dn)
                p.spare = spare
                if ks:
                    p.arkit_index = np.asarray(ks, np.int64)
                    p.dpos = np.stack(dps).astype(np.float32)
                    p.dnrm = np.stack(dns).astype(np.float32)
                self.primitives.append(p)

    def _apply_fallbacks(self) -> None:
        present = {ARKIT_NAMES[k] for p in self.primitives for k in p.arkit_index}
        for name, alts in ARKIT_FALLBACKS.items():
            if name in present:
                continue
            for alt in alts:
                hits = [p for p in self.primitives if any(a.lower() == alt.lower() for a in p.spare)]
                if not hits:
                    continue
                k = NAME_INDEX[name]
                for p in hits:
                    _, dp, dn = next(v for a, v in p.spare.items() if a.lower() == alt.lower())
                    p.arkit_index = np.r_[p.arkit_index, k].astype(np.int64)
                    p.dpos = dp[None].astype(np.float32) if p.dpos is None else np.vstack([p.dpos, dp[None]])
                    p.dnrm = dn[None].astype(np.float32) if p.dnrm is None else np.vstack([p.dnrm, dn[None]])
                self.fallbacks_used[name] = alt
                break
        for p in self.primitives:
            p.spare = {}

    def _mark_dynamic(self) -> None:
        eyes = [self.bones[b] for b in ("LeftEye", "RightEye") if b in self.bones]
        for p in self.primitives:
            if p.joint_nodes is not None and eyes:
                dominant = p.joint_nodes[p.joints[np.arange(len(p.weights)), p.weights.argmax(1)]]
                p.eye_bound = bool(np.isin(dominant, eyes).mean() > 0.5)
        driven = np.zeros(len(self.parents), bool)
        for i in self.order:  # a driven bone and everything below it moves
            driven[i] = i in self.bones.values() or (self.parents[i] >= 0 and driven[self.parents[i]])
        for p in self.primitives:
            moves = driven[p.joint_nodes].any() if p.joint_nodes is not None else driven[p.node]
            p.dynamic = bool(moves or len(p.arkit_index))

    # -- posing --------------------------------------------------------------------------------------------------
    def pose(self, weights=None, rotations=None, eyes: str = "bones") -> Pose:
        """Pose with 52 ARKit weights (canonical order, clipped to 0..1) and rotations (16 floats or 4x4: x, y, z, w
        for Head, Neck, LeftEye, RightEye). None = neutral / rest. Bones the avatar lacks are ignored.

        Frames carry eye gaze twice (eye bones and eyeLook* weights, docs/dsp_engine.md) and eyeLook* morphs on
        an eyeball mesh rotate it too, so `eyes` picks one: "bones" (default) rotates the eye bones and drops the
        eyeLook* weights on eyeball primitives only (lids that follow the gaze keep them); "blendshapes" ignores
        the eye bone rotations; "both" applies everything."""
        if eyes not in EYE_MODES:
            raise ValueError(f"eyes must be one of {', '.join(EYE_MODES)}, got {eyes!r}")
        w = check_weights(weights)
        q = check_rotations(rotations)
        local = self.rest_local.copy()
        for b, bone in enumerate(BONE_NAMES):
            node = self.bones.get(bone)
            if node is None or np.allclose(q[b], (0, 0, 0, 1)):
                continue
            if eyes == "blendshapes" and bone in ("LeftEye", "RightEye"):
                continue
            p = self._parent_rot[bone]
            local[node, :3, :3] = (p.T @ trs_matrix(rotation=q[b])[:3, :3] @ p) @ local[node, :3, :3]
        glob = self._globals(local)
        positions, normals = [], []
        for i, prim in enumerate(self.primitives):
            if self._rest is not None and not prim.dynamic:
                positions.append(self._rest.positions[i])
                normals.append(self._rest.normals[i])
                continue
            pos, nrm = prim.positions, prim.normals
            if len(prim.arkit_index):
                wk = w[prim.arkit_index]
                if eyes == "bones" and prim.eye_bound:
                    wk = np.where(np.isin(prim.arkit_index, EYE_LOOK), 0.0, wk).astype(np.float32)
                if wk.any():
                    pos = pos + (wk @ prim.dpos).reshape(-1, 3)
                    nrm = nrm + (wk @ prim.dnrm).reshape(-1, 3)
            if prim.joint_nodes is not None:
                mats = (glob[prim.joint_nodes] @ prim.joint_ibm)[:, :3, :].astype(np.float32)  # (J, 3, 4)
                blend = np.einsum("vk,vkij->vij", prim.weights, mats[prim.joints])          # (V, 3, 4)
                pos = np.einsum("vij,vj->vi", blend[:, :, :3], pos) + blend[:, :, 3]
                nrm = np.einsum("vij,vj->vi", blend[:, :, :3], nrm)
            else:
                m = glob[prim.node].astype(np.float32)
                pos = pos @ m[:3, :3].T + m[:3, 3]
                nrm = nrm @ m[:3, :3].T
            nrm = nrm / np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-8)
            positions.append(np.ascontiguousarray(pos, np.float32))
            normals.append(np.ascontiguousarray(nrm, np.float32))
        return Pose(positions, normals, glob, self)

    @property
    def rest(self) -> Pose:
        return self._rest

    def face_primitives(self) -> list[int]:
        """Indices of the primitives that carry ARKit targets (the face: head, teeth, eyes)."""
        return [i for i, p in enumerate(self.primitives) if len(p.arkit_index)]

    def describe(self) -> str:
        missing = [n for n in ARKIT_NAMES if n not in self.arkit_present]
        meshes = sorted({self.primitives[i].mesh_name for i in self.face_primitives()})
        return (f"{self.path.name}: {len(self.arkit_present)}/52 ARKit targets on {', '.join(meshes) or 'no mesh'}"
                + (f" (missing or empty: {', '.join(missing)})" if missing else "")
                + "".join(f"; {k} drives {v}" for k, v in self.fallbacks_used.items())
                + f"; bones: {', '.join(f'{b}={self.node_names[n]}' for b, n in self.bones.items()) or 'none'}")


def check_weights(weights) -> np.ndarray:
    if weights is None:
        return np.zeros(NUM_BLENDSHAPES, np.float32)
    w = np.asarray(weights, np.float32).reshape(-1)
    if w.shape != (NUM_BLENDSHAPES,):
        raise ValueError(f"weights must be {NUM_BLENDSHAPES} ARKit values in canonical order, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weights must be finite")
    return np.clip(w, 0.0, 1.0)


def check_rotations(rotations) -> np.ndarray:
    if rotations is None:
        return np.tile(np.array([0, 0, 0, 1.0]), (NUM_BONES, 1))
    q = np.asarray(rotations, np.float64).reshape(-1)
    if q.shape != (4 * NUM_BONES,):
        raise ValueError(f"rotations must be {NUM_BONES} quaternions (x, y, z, w) for {', '.join(BONE_NAMES)}, "
                         f"got {q.size} values")
    q = q.reshape(NUM_BONES, 4)
    n = np.linalg.norm(q, axis=1, keepdims=True)
    if not np.isfinite(q).all() or (n < 1e-6).any():
        raise ValueError("rotations must be finite, non-zero quaternions")
    return q / n


def _vertex_normals(pos: np.ndarray, idx: np.ndarray) -> np.ndarray:
    tri = idx.reshape(-1, 3)
    fn = np.cross(pos[tri[:, 1]] - pos[tri[:, 0]], pos[tri[:, 2]] - pos[tri[:, 0]])
    out = np.zeros_like(pos)
    for k in range(3):
        np.add.at(out, tri[:, k], fn)
    return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)

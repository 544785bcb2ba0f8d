"""Offscreen CPU rendering of a posed avatar with moderngl (OpenGL 3.3 core on Mesa llvmpipe via headless EGL).

One small shader: base-colour texture x factor, two fixed directional lights in camera space plus ambient, glTF
alpha modes (OPAQUE, MASK with alphaCutoff, BLEND drawn after opaque without depth writes). Fixed lights and camera,
no time-dependent state and a software rasteriser: the same frame renders to the same pixels.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from engine.render.avatar import EYE_MODES, Avatar, Pose
from engine.render.transforms import look_at, perspective

VERTEX_SHADER = """
#version 330
uniform mat4 u_view;
uniform mat4 u_proj;
in vec3 in_pos;
in vec3 in_nrm;
in vec2 in_uv;
out vec3 v_nrm;
out vec2 v_uv;
void main() {
    v_nrm = mat3(u_view) * in_nrm;
    v_uv = in_uv;
    gl_Position = u_proj * u_view * vec4(in_pos, 1.0);
}
"""

FRAGMENT_SHADER = """
#version 330
uniform sampler2D u_tex;
uniform bool u_has_tex;
uniform vec4 u_color;
uniform int u_alpha_mode;   // 0 opaque, 1 mask, 2 blend
uniform float u_cutoff;
in vec3 v_nrm;
in vec2 v_uv;
out vec4 f_color;
const vec3 KEY = normalize(vec3(-0.35, 0.45, 0.82));   // camera space: from upper left, in front
const vec3 FILL = normalize(vec3(0.6, -0.1, 0.8));
void main() {
    vec4 base = u_color;
    if (u_has_tex) base *= texture(u_tex, v_uv);
    if (u_alpha_mode == 1 && base.a < u_cutoff) discard;
    vec3 n = normalize(v_nrm);
    if (!gl_FrontFacing) n = -n;
    float light = 0.42 + 0.55 * max(dot(n, KEY), 0.0) + 0.18 * max(dot(n, FILL), 0.0);
    f_color = vec4(base.rgb * light, u_alpha_mode == 2 ? base.a : 1.0);
}
"""

BACKGROUND = (0.58, 0.62, 0.68)


def create_context():
    """A headless OpenGL 3.3 context. Linux: EGL (Mesa llvmpipe on a CPU-only machine). Override the glcontext
    backend with AVATAR_BRIDGE_GL_BACKEND (egl, osmesa, x11, ...)."""
    import moderngl

    backend = os.environ.get("AVATAR_BRIDGE_GL_BACKEND") or ("egl" if sys.platform.startswith("linux") else None)
    kw = {"backend": backend} if backend else {}
    try:
        return moderngl.create_standalone_context(require=330, **kw)
    except Exception as exc:
        raise RuntimeError(
            f"cannot create an offscreen OpenGL 3.3 context (backend {backend or 'default'}): {exc}. On Debian/Ubuntu "
            f"install libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri (Mesa's llvmpipe renders on the CPU)") from exc


class FaceRenderer:
    """Renders an avatar's face from the front: ``FaceRenderer(avatar, 512, 512).render(weights, rotations)``.

    The camera looks down -Z at the rest-pose bounds of the meshes that carry ARKit targets (the face), so the
    subject's left (+X) is image right; it never moves with the head. `fov_deg` is vertical; `margin` scales the
    framed box. `eyes`: "bones" | "blendshapes" | "both", see Avatar.pose."""

    def __init__(self, avatar: Avatar, width: int = 512, height: int = 512, *, samples: int = 4,
                 fov_deg: float = 18.0, margin: float = 1.35, background=BACKGROUND, eyes: str = "bones"):
        if not (16 <= width <= 4096 and 16 <= height <= 4096):
            raise ValueError(f"image size must be 16..4096 pixels per side, got {width}x{height}")
        self.avatar, self.width, self.height = avatar, int(width), int(height)
        if eyes not in EYE_MODES:
            raise ValueError(f"eyes must be one of {', '.join(EYE_MODES)}, got {eyes!r}")
        self.eyes = eyes  # see Avatar.pose: eye gaze from the eye bones (default) or the eyeLook* shapes
        self.background = tuple(float(c) for c in background)
        self._setup_camera(fov_deg, margin)
        self.ctx = create_context()
        with self.ctx:
            self._setup_gl(samples)

    def _setup_gl(self, samples: int) -> None:
        avatar, ctx = self.avatar, self.ctx
        self.prog = ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=FRAGMENT_SHADER)
        self.prog["u_view"].write(self.view.T.astype("f4").tobytes())
        self.prog["u_proj"].write(self.proj.T.astype("f4").tobytes())
        self.prog["u_tex"].value = 0
        size = (self.width, self.height)
        samples = min(samples, ctx.max_samples) if samples > 1 else 0
        self.fbo = ctx.framebuffer(color_attachments=[ctx.renderbuffer(size, 4, samples=samples)],
                                   depth_attachment=ctx.depth_renderbuffer(size, samples=samples))
        self.resolve = ctx.simple_framebuffer(size, components=4) if samples else self.fbo
        self._textures: dict[int, object] = {}
        self._draws = []
        rest = avatar.rest
        for i, prim in enumerate(avatar.primitives):
            vpos = ctx.buffer(rest.positions[i].tobytes(), dynamic=prim.dynamic)
            vnrm = ctx.buffer(rest.normals[i].tobytes(), dynamic=prim.dynamic)
            vuv = ctx.buffer(prim.uvs.astype("f4").tobytes())
            ibo = ctx.buffer(prim.indices.astype("u4").tobytes())
            vao = ctx.vertex_array(self.prog, [(vpos, "3f", "in_pos"), (vnrm, "3f", "in_nrm"), (vuv, "2f", "in_uv")],
                                   index_buffer=ibo, index_element_size=4)
            self._draws.append((i, vao, vpos, vnrm, self._material(prim.material)))
        # opaque and masked first, blended last (in file order: eyelashes/highlights over the eyes)
        self._draws.sort(key=lambda d: d[4]["mode"] == 2)
        self._uploaded: Pose | None = rest

    # -- setup ---------------------------------------------------------------------------------------------------
    def _setup_camera(self, fov_deg: float, margin: float) -> None:
        rest = self.avatar.rest
        face = self.avatar.face_primitives() or list(range(len(self.avatar.primitives)))
        pts = np.concatenate([rest.positions[i] for i in face])
        lo, hi = pts.min(0), pts.max(0)
        center = (lo + hi) / 2
        aspect = self.width / self.height
        half_h = max(hi[1] - lo[1], (hi[0] - lo[0]) / aspect) * margin / 2
        dist = half_h / np.tan(np.radians(fov_deg) / 2) + (hi[2] - lo[2]) / 2
        self.eye = center + np.array([0.0, 0.0, dist])
        self.target = center
        self.view = look_at(self.eye, center)
        self.proj = perspective(fov_deg, aspect, max(dist / 20, 0.01), dist * 20)

    def _material(self, index: int | None) -> dict:
        mat = {"color": (1.0, 1.0, 1.0, 1.0), "tex": None, "mode": 0, "cutoff": 0.5, "double": True}
        if index is None:
            return mat
        m = self.avatar.file.gltf.materials[index]
        pbr = m.pbrMetallicRoughness
        if pbr is not None:
            mat["color"] = tuple(pbr.baseColorFactor or (1, 1, 1, 1))
            if pbr.baseColorTexture is not None:
                mat["tex"] = self._texture(pbr.baseColorTexture.index)
        mat["mode"] = {"MASK": 1, "BLEND": 2}.get(m.alphaMode or "OPAQUE", 0)
        mat["cutoff"] = 0.5 if m.alphaCutoff is None else float(m.alphaCutoff)
        mat["double"] = bool(m.doubleSided)
        return mat

    def _texture(self, index: int):
        if index not in self._textures:
            import moderngl

            img = self.avatar.file.texture_image(index)
            if img is None:
                self._textures[index] = None
            else:
                # rows uploaded top row first: GL's t=0 is then the image top, which is glTF's v=0 (no flip)
                tex = self.ctx.texture((img.shape[1], img.shape[0]), 4, np.ascontiguousarray(img).tobytes())
                tex.build_mipmaps()
                tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
                tex.repeat_x = tex.repeat_y = True
                self._textures[index] = tex
        return self._textures[index]

    # -- rendering -----------------------------------------------------------------------------------------------
    def render(self, weights=None, rotations=None) -> np.ndarray:
        """52 ARKit weights + 4 bone quaternions (x, y, z, w; Head, Neck, LeftEye, RightEye) -> HxWx3 uint8 RGB,
        C-contiguous, top row first."""
        return self.render_pose(self.avatar.pose(weights, rotations, eyes=self.eyes))

    def render_pose(self, pose: Pose) -> np.ndarray:
        with self.ctx:  # several renderers may live in one process: make ours current
            return self._render_pose(pose)

    def _render_pose(self, pose: Pose) -> np.ndarray:
        import moderngl

        ctx = self.ctx
        for i, vao, vpos, vnrm, mat in self._draws:
            if self.avatar.primitives[i].dynamic and self._uploaded is not pose:
                vpos.write(pose.positions[i])
                vnrm.write(pose.normals[i])
        self._uploaded = pose
        self.fbo.use()
        ctx.clear(*self.background, 1.0, depth=1.0)
        ctx.enable(moderngl.DEPTH_TEST)
        for i, vao, vpos, vnrm, mat in self._draws:
            blend = mat["mode"] == 2
            if blend:
                ctx.enable(moderngl.BLEND)
                ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
                ctx.depth_mask = False
            if mat["double"]:
                ctx.disable(moderngl.CULL_FACE)
            else:
                ctx.enable(moderngl.CULL_FACE)
            self.prog["u_color"].value = mat["color"]
            self.prog["u_alpha_mode"].value = mat["mode"]
            self.prog["u_cutoff"].value = mat["cutoff"]
            self.prog["u_has_tex"].value = mat["tex"] is not None
            if mat["tex"] is not None:
                mat["tex"].use(0)
            vao.render(moderngl.TRIANGLES)
            if blend:
                ctx.disable(moderngl.BLEND)
                ctx.depth_mask = True
        if self.resolve is not self.fbo:
            ctx.copy_framebuffer(self.resolve, self.fbo)
        raw = self.resolve.read(components=3, alignment=1)
        img = np.frombuffer(raw, np.uint8).reshape(self.height, self.width, 3)
        return np.ascontiguousarray(img[::-1])  # GL rows are bottom-up

    def project(self, points) -> np.ndarray:
        """World points (N, 3) -> pixel coordinates (N, 2): x to the right, y down, as in the rendered image."""
        p = np.c_[np.asarray(points, np.float64).reshape(-1, 3), np.ones(len(np.asarray(points).reshape(-1, 3)))]
        clip = p @ (self.proj @ self.view).T
        ndc = clip[:, :2] / clip[:, 3:4]
        return np.c_[(ndc[:, 0] + 1) / 2 * self.width, (1 - ndc[:, 1]) / 2 * self.height]

    def close(self) -> None:
        if self.ctx is not None:
            self.ctx.release()
            self.ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

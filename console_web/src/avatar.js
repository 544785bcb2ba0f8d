// The 3D avatar: a three.js scene that loads a .glb / .vrm and shows one frame of the stream at a time
// (ARKit-52 weights onto morph targets by name, Head / Neck / LeftEye / RightEye quaternions onto bones).
import * as THREE from 'three';
import { GLTFLoader } from 'three/examples/jsm/loaders/GLTFLoader.js';
import { VRMLoaderPlugin, VRMUtils } from '@pixiv/three-vrm';
import ARKIT from './arkit.json';

export const ARKIT_NAMES = ARKIT.blendshapes;
export const BONE_NAMES = ARKIT.bones;
const VRM_BONES = { Head: 'head', Neck: 'neck', LeftEye: 'leftEye', RightEye: 'rightEye' };

// A morph target's name -> the ARKit name it carries, or null. Accepts camelCase and PascalCase, a prefix such as
// "blendShape1." or "ARKit:", and the _L / _R suffix some rigs use.
const LOWER = new Map(ARKIT_NAMES.map((n) => [n.toLowerCase(), n]));
export function arkitNameOf(target) {
  let k = target.replace(/^.*[.:]/, '').replace(/^arkit_?/i, '');
  k = k.replace(/_L$/, 'Left').replace(/_R$/, 'Right');
  return LOWER.get(k.toLowerCase()) ?? null;
}

function findBone(root, name) {
  let exact = null, loose = null;
  const want = name.toLowerCase();
  root.traverse((o) => {
    const n = (o.name || '').toLowerCase();
    if (!exact && n === want) exact = o;
    else if (!loose && (n.endsWith(':' + want) || n.endsWith('_' + want) || n.endsWith('.' + want))) loose = o;
  });
  return exact || loose;
}

export class AvatarView {
  constructor(canvas) {
    this.canvas = canvas;
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: false }); // software GL (SwiftShader) keeps its frame rate without MSAA
    this.renderer.setPixelRatio(1);
    this.renderer.setSize(canvas.clientWidth || canvas.width, canvas.clientHeight || canvas.height, false);
    this.renderer.outputColorSpace = THREE.SRGBColorSpace;
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(0x9aa5b4);
    this.camera = new THREE.PerspectiveCamera(22, canvas.width / canvas.height, 0.01, 20);
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x445566, 1.6));
    const key = new THREE.DirectionalLight(0xffffff, 2.2);
    key.position.set(0.6, 1.2, 1.5);
    this.scene.add(key);
    this.model = null;
    this.morphs = [];   // [{mesh, slots: [[arkitIndex, targetIndex], ...]}]
    this.bones = [];    // [{bone, rest: local quaternion, world: rest orientation in avatar space}] per BONE_NAMES
    this.onFrame = null; // (nowMs) -> called before each render
    this.fps = 0;
    this._count = 0;
    this._since = performance.now();
    this._tmp = new THREE.Quaternion();
    this._inv = new THREE.Quaternion();
    const tick = (now) => {
      requestAnimationFrame(tick);
      if (this.onFrame) this.onFrame(now);
      this.renderer.render(this.scene, this.camera);
      this._count += 1;
      if (now - this._since >= 1000) {
        this.fps = (this._count * 1000) / (now - this._since);
        this._count = 0;
        this._since = now;
      }
    };
    requestAnimationFrame(tick);
  }

  // Load from a URL or an ArrayBuffer; returns the report the page lists (found / missing morphs and bones).
  async load(source, label) {
    const loader = new GLTFLoader();
    loader.register((parser) => new VRMLoaderPlugin(parser));
    const gltf = typeof source === 'string'
      ? await loader.loadAsync(source)
      : await new Promise((ok, bad) => loader.parse(source, '', ok, bad));
    const vrm = gltf.userData.vrm || null;
    if (vrm) VRMUtils.rotateVRM0(vrm); // VRM 0.x faces -Z; turned so every avatar faces +Z like the stream's space
    const root = vrm ? vrm.scene : gltf.scene;
    if (this.model) this.scene.remove(this.model);
    this.model = root;
    this.scene.add(root);
    root.updateMatrixWorld(true);

    this.morphs = [];
    const found = new Set(), targets = new Set();
    root.traverse((o) => {
      if (!o.morphTargetDictionary || !o.morphTargetInfluences) return;
      const slots = [];
      for (const [name, ti] of Object.entries(o.morphTargetDictionary)) {
        targets.add(name);
        const a = arkitNameOf(name);
        if (a) { slots.push([ARKIT_NAMES.indexOf(a), ti]); found.add(a); }
      }
      if (slots.length) this.morphs.push({ mesh: o, slots });
    });
    this.bones = BONE_NAMES.map((b) => {
      const bone = vrm ? vrm.humanoid?.getRawBoneNode(VRM_BONES[b]) : findBone(root, b);
      if (!bone) return null;
      const world = new THREE.Quaternion();
      bone.getWorldQuaternion(world);
      return { bone, rest: bone.quaternion.clone(), world };
    });
    this.frame(root);
    return {
      label,
      morphTargets: [...targets],
      found: ARKIT_NAMES.filter((n) => found.has(n)),
      missing: ARKIT_NAMES.filter((n) => !found.has(n)),
      bones: Object.fromEntries(BONE_NAMES.map((b, i) => [b, this.bones[i] ? this.bones[i].bone.name : null])),
    };
  }

  // Point the camera at the face: the Head bone when there is one, else the model's top.
  frame(root) {
    const box = new THREE.Box3().setFromObject(root);
    const head = this.bones[0]?.bone;
    const c = new THREE.Vector3();
    let size;
    if (head) {
      head.getWorldPosition(c);
      const top = Math.max(box.max.y - c.y, 0.12);
      c.y += top * 0.45;
      size = Math.min(0.5, top * 0.8); // half the visible height
    } else {
      box.getCenter(c);
      size = box.getSize(new THREE.Vector3()).length() * 0.6;
    }
    const dist = size / Math.tan(THREE.MathUtils.degToRad(this.camera.fov / 2));
    this.camera.position.set(c.x, c.y + size * 0.05, c.z + dist);
    this.camera.lookAt(c);
  }

  // One frame: weights in ARKit order (0..1), rotations 4 floats (x, y, z, w) per bone in BONE_NAMES order.
  apply(weights, rotations) {
    for (const { mesh, slots } of this.morphs) {
      const inf = mesh.morphTargetInfluences;
      for (const [a, t] of slots) inf[t] = weights[a] ?? 0;
    }
    if (!rotations) return;
    this.bones.forEach((b, i) => {
      if (!b) return;
      // The stream's rotation is local to the rest pose, written in the avatar space (docs/conventions.md). The
      // avatar faces +Z in three.js's world (right-handed, Y up: the same space), so the only mapping is into the
      // bone's own rest frame: local = rest * W^-1 * q * W, with W the bone's rest orientation in that space.
      const q = this._tmp.set(rotations[4 * i], rotations[4 * i + 1], rotations[4 * i + 2], rotations[4 * i + 3]);
      this._inv.copy(b.world).invert();
      q.premultiply(this._inv).multiply(b.world);
      b.bone.quaternion.copy(b.rest).multiply(q);
    });
  }

  rest() {
    this.apply(new Array(52).fill(0), null);
    for (const b of this.bones) if (b) b.bone.quaternion.copy(b.rest);
  }
}

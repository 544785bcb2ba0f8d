using System.Collections.Generic;
using AvatarBridge.Core;
using UnityEngine;

namespace AvatarBridge.Face
{
    /// <summary>
    /// A <see cref="DefaultFaceMapper"/> bound to one avatar: the renderers, the ARKit → blendshape table, and the bones
    /// with their base rotations. Applies a pose (canonical conventions) to the rig in Unity's conventions.
    /// </summary>
    public sealed class FaceRigBinding : IFaceBinding, IBlendshapeSink
    {
        readonly Transform root;
        readonly List<SkinnedMeshRenderer> renderers;
        readonly Transform[] bones;
        readonly float[] boneWeights;
        readonly Quaternion[] bindLocal;
        readonly Quaternion[] bindInRoot;
        readonly Quaternion[] baseLocal;
        readonly Quaternion[] baseInRoot;
        readonly bool additive;
        readonly List<string> warnings;

        /// <summary>The ARKit → blendshape table.</summary>
        public readonly FaceRigMap Map;

        internal FaceRigBinding(Transform root, List<SkinnedMeshRenderer> renderers, FaceRigMap map, Transform[] bones,
                                BoneMapping[] mappings, bool additive, List<string> warnings)
        {
            this.root = root;
            this.renderers = renderers;
            Map = map;
            this.bones = bones;
            this.additive = additive;
            this.warnings = warnings;
            boneWeights = new float[bones.Length];
            bindLocal = new Quaternion[bones.Length];
            bindInRoot = new Quaternion[bones.Length];
            baseLocal = new Quaternion[bones.Length];
            baseInRoot = new Quaternion[bones.Length];
            for (int b = 0; b < bones.Length; b++)
            {
                boneWeights[b] = Mathf.Clamp01(mappings[b].weight);
                if (bones[b] == null) continue;
                bindLocal[b] = bones[b].localRotation;
                bindInRoot[b] = Quaternion.Inverse(root.rotation) * bones[b].rotation;
            }
        }

        /// <summary>Problems found while binding (missing shapes, renderers or bones); the binding works around them.</summary>
        public IList<string> Warnings { get { return warnings.AsReadOnly(); } }

        /// <summary>The driven renderers, in the order of <see cref="FaceRigMap.Bindings"/>' mesh indices.</summary>
        public IList<SkinnedMeshRenderer> Renderers { get { return renderers.AsReadOnly(); } }

        /// <summary>Head, Neck, LeftEye, RightEye transforms (null where not found).</summary>
        public IList<Transform> Bones { get { return System.Array.AsReadOnly(bones); } }

        /// <summary>Writes <paramref name="pose"/> to the blendshapes and bones. Call in LateUpdate, after animation.</summary>
        public void Apply(FacePose pose)
        {
            Map.Apply(pose, this);
            // Read every base first: writing the neck changes where the head is.
            for (int b = 0; b < bones.Length; b++)
            {
                if (bones[b] == null) continue;
                if (additive)
                {
                    baseLocal[b] = bones[b].localRotation;
                    baseInRoot[b] = Quaternion.Inverse(root.rotation) * bones[b].rotation;
                }
                else
                {
                    baseLocal[b] = bindLocal[b];
                    baseInRoot[b] = bindInRoot[b];
                }
            }
            for (int b = 0; b < bones.Length; b++)
            {
                if (bones[b] == null || boneWeights[b] <= 0f) continue;
                Quat delta = Quat.Slerp(Quat.Identity, CoordinateConversion.ToUnity(pose.Rotations[b]), boneWeights[b]);
                bones[b].localRotation = CoordinateConversion.BoneLocalRotation(
                    baseLocal[b].ToQuat(), baseInRoot[b].ToQuat(), delta).ToQuaternion();
            }
        }

        /// <summary>Sets every driven blendshape to 0 and the bones back to their bind pose.</summary>
        public void Restore()
        {
            foreach (var b in Map.Bindings)
                if (renderers[b.Mesh] != null) renderers[b.Mesh].SetBlendShapeWeight(b.ShapeIndex, 0f);
            if (additive) return;  // the Animator owns the bones' base pose
            for (int b = 0; b < bones.Length; b++)
                if (bones[b] != null) bones[b].localRotation = bindLocal[b];
        }

        /// <inheritdoc/>
        public void SetWeight(int mesh, int shapeIndex, float value)
        {
            SkinnedMeshRenderer r = renderers[mesh];
            if (r != null) r.SetBlendShapeWeight(shapeIndex, value);
        }
    }
}

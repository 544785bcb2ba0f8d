using System;
using System.Collections.Generic;
using AvatarBridge.Core;
using UnityEngine;

namespace AvatarBridge.Face
{
    /// <summary>How the mapper finds the head, neck and eye bones.</summary>
    public enum BoneSource
    {
        /// <summary>The Animator's Humanoid avatar when there is one, otherwise transforms found by name.</summary>
        HumanoidThenNames,
        /// <summary>Only the Animator's Humanoid avatar (HumanBodyBones.Head, Neck, LeftEye, RightEye).</summary>
        Humanoid,
        /// <summary>Only transforms found by name under the actor.</summary>
        Names,
        /// <summary>Do not drive bones (blendshapes only).</summary>
        None,
    }

    /// <summary>What a bone's rotation is added to.</summary>
    public enum BoneBase
    {
        /// <summary>The pose the bones have when the actor binds (the rig's rest pose, if nothing animates it).</summary>
        BindPose,
        /// <summary>The pose an Animator wrote this frame (the face moves on top of idle or body animation).</summary>
        AnimatedPose,
        /// <summary>AnimatedPose when the actor has an enabled Animator with a controller, BindPose otherwise.</summary>
        Auto,
    }

    /// <summary>A rig shape bound to an ARKit name by hand (names that the loose matching does not catch).</summary>
    [Serializable]
    public sealed class ShapeOverride
    {
        /// <summary>The blendshape's name on the mesh, exactly.</summary>
        public string rigShape = "";
        /// <summary>The ARKit camelCase name it plays, e.g. jawOpen.</summary>
        public string arkitName = "";
    }

    /// <summary>A per-ARKit-shape response: clamp(w · gain + offset, min, max), then × the weight scale.</summary>
    [Serializable]
    public sealed class ShapeResponse
    {
        /// <summary>ARKit camelCase name.</summary>
        public string arkitName = "jawOpen";
        /// <summary>Multiplier.</summary>
        public float gain = 1f;
        /// <summary>Added after the gain (0..1 scale).</summary>
        public float offset;
        /// <summary>Lower clamp (0..1 scale).</summary>
        public float min;
        /// <summary>Upper clamp (0..1 scale).</summary>
        public float max = 1f;
    }

    /// <summary>One canonical bone: the transform name to look for and how much of the rotation to apply.</summary>
    [Serializable]
    public sealed class BoneMapping
    {
        /// <summary>Transform name searched under the actor when not using Humanoid.</summary>
        public string transformName = "";
        /// <summary>0..1: fraction of the streamed rotation applied (0 = leave the bone alone).</summary>
        [Range(0f, 1f)] public float weight = 1f;
    }

    /// <summary>
    /// The default mapper asset: binds the 52 ARKit names to blendshapes on one or more SkinnedMeshRenderers, shapes
    /// them (gain/offset/clamp, × 100 for Unity's 0..100) and drives Head/Neck/eye bones. One asset per rig family
    /// (Ready Player Me, VRoid, Character Creator, your own), shared by any number of actors. A rig this cannot
    /// describe gets its own subclass of <see cref="FaceMapper"/> instead of an edited package.
    /// </summary>
    [CreateAssetMenu(fileName = "FaceMapper", menuName = "Avatar Bridge/Face Mapper", order = 200)]
    public sealed class DefaultFaceMapper : FaceMapper
    {
        [Tooltip("Names of the SkinnedMeshRenderers (GameObject or mesh name) to drive, e.g. Wolf3D_Head, " +
                 "Wolf3D_Teeth, EyeLeft, EyeRight. Empty: every SkinnedMeshRenderer under the actor that has ARKit shapes.")]
        [SerializeField] List<string> meshNames = new List<string>();

        [Tooltip("Rig shape -> ARKit name, for shapes the automatic matching does not recognise.")]
        [SerializeField] List<ShapeOverride> overrides = new List<ShapeOverride>();

        [Tooltip("Per-shape gain / offset / clamp. Shapes not listed pass through (gain 1, clamp 0..1).")]
        [SerializeField] List<ShapeResponse> responses = new List<ShapeResponse>();

        [Tooltip("Multiplies every weight after its response: 100 for Unity's 0..100 blendshape scale.")]
        [SerializeField] float weightScale = 100f;

        [SerializeField] BoneSource boneSource = BoneSource.HumanoidThenNames;
        [SerializeField] BoneBase boneBase = BoneBase.Auto;
        [SerializeField] BoneMapping head = new BoneMapping { transformName = "Head" };
        [SerializeField] BoneMapping neck = new BoneMapping { transformName = "Neck" };
        [SerializeField] BoneMapping leftEye = new BoneMapping { transformName = "LeftEye" };
        [SerializeField] BoneMapping rightEye = new BoneMapping { transformName = "RightEye" };

        /// <summary>Renderer names to drive (empty: all with ARKit shapes).</summary>
        public List<string> MeshNames { get { return meshNames; } }
        /// <summary>Manual name bindings.</summary>
        public List<ShapeOverride> Overrides { get { return overrides; } }
        /// <summary>Per-shape responses.</summary>
        public List<ShapeResponse> Responses { get { return responses; } }
        /// <summary>Weight scale (100 for Unity).</summary>
        public float WeightScale { get { return weightScale; } set { weightScale = value; } }
        /// <summary>Where bones come from.</summary>
        public BoneSource BoneSource { get { return boneSource; } set { boneSource = value; } }
        /// <summary>What bone rotations are added to.</summary>
        public BoneBase BoneBase { get { return boneBase; } set { boneBase = value; } }

        /// <summary>Bone mappings in canonical order: Head, Neck, LeftEye, RightEye.</summary>
        public BoneMapping[] Bones { get { return new[] { head, neck, leftEye, rightEye }; } }

        /// <summary>
        /// Binds this mapper to an avatar. Problems that do not stop it (missing shapes or bones) are returned in
        /// <see cref="FaceRigBinding.Warnings"/>; a bad override (not an ARKit name) throws ArgumentException.
        /// </summary>
        public override IFaceBinding Bind(Transform root, Animator animator)
        {
            return BindRig(root, animator);
        }

        /// <summary><see cref="Bind"/> with the concrete binding: its renderers, shape table and bones.</summary>
        public FaceRigBinding BindRig(Transform root, Animator animator)
        {
            if (root == null) throw new ArgumentNullException("root");
            var warnings = new List<string>();
            var renderers = FindRenderers(root, warnings);
            var meshes = new List<RigMesh>();
            foreach (var r in renderers)
            {
                Mesh m = r.sharedMesh;
                var names = new string[m.blendShapeCount];
                for (int i = 0; i < names.Length; i++) names[i] = m.GetBlendShapeName(i);
                meshes.Add(new RigMesh(r.name, names));
            }
            Dictionary<string, string> overrideMap = null;
            if (overrides.Count > 0)
            {
                overrideMap = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var o in overrides)
                    if (!string.IsNullOrEmpty(o.rigShape)) overrideMap[o.rigShape] = o.arkitName;
            }
            FaceRigMap map = FaceRigMap.Build(meshes, overrideMap);
            map.Scale = weightScale;
            foreach (var resp in responses)
            {
                int a = ArkitNames.IndexOf(resp.arkitName);
                if (a < 0)
                {
                    warnings.Add("response for '" + resp.arkitName + "' ignored: not an ARKit name");
                    continue;
                }
                map.SetCurve(a, new BlendshapeCurve(resp.gain, resp.offset, resp.min, resp.max));
            }
            if (renderers.Count > 0 && map.MissingArkitNames.Count > 0)
                warnings.Add(map.MissingArkitNames.Count + " ARKit shapes are on none of the meshes and stay still: " +
                             string.Join(", ", new List<string>(map.MissingArkitNames).ToArray()));

            bool additive = boneBase == BoneBase.AnimatedPose ||
                            (boneBase == BoneBase.Auto && animator != null && animator.isActiveAndEnabled &&
                             animator.runtimeAnimatorController != null);
            Transform[] boneTransforms = FindBones(root, animator, warnings);
            return new FaceRigBinding(root, renderers, map, boneTransforms, Bones, additive, warnings);
        }

        List<SkinnedMeshRenderer> FindRenderers(Transform root, List<string> warnings)
        {
            var all = root.GetComponentsInChildren<SkinnedMeshRenderer>(true);
            var found = new List<SkinnedMeshRenderer>();
            if (meshNames.Count == 0)
            {
                foreach (var r in all)
                {
                    if (r.sharedMesh == null) continue;
                    Mesh m = r.sharedMesh;
                    for (int i = 0; i < m.blendShapeCount; i++)
                        if (FaceRigMap.MatchArkit(m.GetBlendShapeName(i), null) >= 0) { found.Add(r); break; }
                }
                if (found.Count == 0) warnings.Add("no SkinnedMeshRenderer under '" + root.name + "' has ARKit blendshapes");
                return found;
            }
            foreach (string name in meshNames)
            {
                SkinnedMeshRenderer hit = null;
                foreach (var r in all)
                    if (r.sharedMesh != null && (r.name == name || r.sharedMesh.name == name)) { hit = r; break; }
                if (hit == null) warnings.Add("no SkinnedMeshRenderer named '" + name + "' under '" + root.name + "'");
                else found.Add(hit);
            }
            return found;
        }

        Transform[] FindBones(Transform root, Animator animator, List<string> warnings)
        {
            var result = new Transform[ArkitNames.BoneCount];
            if (boneSource == BoneSource.None) return result;
            bool humanoid = animator != null && animator.isHuman &&
                            (boneSource == BoneSource.Humanoid || boneSource == BoneSource.HumanoidThenNames);
            if (boneSource == BoneSource.Humanoid && !humanoid)
                warnings.Add("bone source is Humanoid but the actor has no Animator with a Humanoid avatar");
            HumanBodyBones[] human = { HumanBodyBones.Head, HumanBodyBones.Neck, HumanBodyBones.LeftEye, HumanBodyBones.RightEye };
            BoneMapping[] maps = Bones;
            for (int b = 0; b < result.Length; b++)
            {
                if (maps[b].weight <= 0f) continue;
                if (humanoid) result[b] = animator.GetBoneTransform(human[b]);
                if (result[b] == null && boneSource != BoneSource.Humanoid && !string.IsNullOrEmpty(maps[b].transformName))
                    result[b] = FindDeep(root, maps[b].transformName);
                if (result[b] == null)
                    warnings.Add("no " + ArkitNames.Bones[b] + " bone found (" +
                                 (humanoid ? "Humanoid avatar" : "name '" + maps[b].transformName + "'") + "); it stays still");
            }
            return result;
        }

        static Transform FindDeep(Transform t, string name)
        {
            if (t.name == name) return t;
            for (int i = 0; i < t.childCount; i++)
            {
                Transform hit = FindDeep(t.GetChild(i), name);
                if (hit != null) return hit;
            }
            return null;
        }
    }
}

using System;
using System.Collections.Generic;

namespace AvatarBridge.Core
{
    /// <summary>
    /// The canonical ARKit-52 blendshape table and bone list of the <c>avatarbridge.v1</c> contract
    /// (the <c>ArkitBlendshape</c> and <c>Bone</c> enums of proto/avatarbridge/v1/bridge.proto).
    /// The index is the position in <c>Frame.weights</c> / <c>Frame.rotations</c>.
    /// </summary>
    public static class ArkitNames
    {
        /// <summary>Number of ARKit blendshapes (52).</summary>
        public const int BlendshapeCount = 52;

        /// <summary>Number of canonical bones (Head, Neck, LeftEye, RightEye).</summary>
        public const int BoneCount = 4;

        /// <summary>Index of the Head bone.</summary>
        public const int Head = 0;
        /// <summary>Index of the Neck bone.</summary>
        public const int Neck = 1;
        /// <summary>Index of the subject's left eye bone.</summary>
        public const int LeftEye = 2;
        /// <summary>Index of the subject's right eye bone.</summary>
        public const int RightEye = 3;

        static readonly string[] blendshapes =
        {
            "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
            "eyeSquintLeft", "eyeWideLeft",
            "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
            "eyeSquintRight", "eyeWideRight",
            "jawForward", "jawLeft", "jawRight", "jawOpen",
            "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
            "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
            "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
            "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
            "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
            "mouthUpperUpLeft", "mouthUpperUpRight",
            "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
            "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
            "noseSneerLeft", "noseSneerRight", "tongueOut",
        };

        static readonly string[] bones = { "Head", "Neck", "LeftEye", "RightEye" };

        static readonly Dictionary<string, int> index = BuildIndex();

        /// <summary>The 52 camelCase names in canonical order (a read-only view).</summary>
        public static IList<string> Blendshapes { get { return Array.AsReadOnly(blendshapes); } }

        /// <summary>The bone names in canonical order (a read-only view).</summary>
        public static IList<string> Bones { get { return Array.AsReadOnly(bones); } }

        /// <summary>The camelCase name of canonical blendshape <paramref name="i"/>.</summary>
        public static string Name(int i) { return blendshapes[i]; }

        /// <summary>The canonical index of an exact camelCase ARKit name, or -1.</summary>
        public static int IndexOf(string name)
        {
            int i;
            return name != null && index.TryGetValue(name, out i) ? i : -1;
        }

        static Dictionary<string, int> BuildIndex()
        {
            var d = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < blendshapes.Length; i++) d.Add(blendshapes[i], i);
            return d;
        }
    }
}

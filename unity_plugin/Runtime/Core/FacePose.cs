using System;

namespace AvatarBridge.Core
{
    /// <summary>
    /// The face at one instant: 52 ARKit weights (0..1) and the four bone rotations, in canonical conventions.
    /// The actor holds one; the mapper reads it. Reused in place to keep LateUpdate allocation-free.
    /// </summary>
    public sealed class FacePose
    {
        /// <summary>52 weights, canonical ARKit order.</summary>
        public readonly float[] Weights = new float[ArkitNames.BlendshapeCount];
        /// <summary>Head, Neck, LeftEye, RightEye; canonical (right-handed) convention.</summary>
        public readonly Quat[] Rotations = { Quat.Identity, Quat.Identity, Quat.Identity, Quat.Identity };
        /// <summary>Head translation in metres (canonical), zero when the engine sends none.</summary>
        public Vec3 Translation;
        /// <summary>Stream time this pose was sampled at (seconds on the audio's clock).</summary>
        public double Time;

        /// <summary>Resets to the rest pose (all weights 0, identity rotations).</summary>
        public void Reset()
        {
            Array.Clear(Weights, 0, Weights.Length);
            for (int i = 0; i < Rotations.Length; i++) Rotations[i] = Quat.Identity;
            Translation = Vec3.Zero;
            Time = 0;
        }

        /// <summary>Copies another pose.</summary>
        public void CopyFrom(FacePose other)
        {
            Array.Copy(other.Weights, Weights, Weights.Length);
            Array.Copy(other.Rotations, Rotations, Rotations.Length);
            Translation = other.Translation;
            Time = other.Time;
        }

        /// <summary>Sets this pose to <paramref name="a"/> + (<paramref name="b"/> − <paramref name="a"/>)·t (slerp for rotations).</summary>
        public void SetInterpolated(FaceFrame a, FaceFrame b, float t)
        {
            for (int i = 0; i < Weights.Length; i++) Weights[i] = a.Weights[i] + (b.Weights[i] - a.Weights[i]) * t;
            for (int i = 0; i < Rotations.Length; i++) Rotations[i] = Quat.Slerp(a.Rotations[i], b.Rotations[i], t);
            Translation = Vec3.Lerp(a.Translation, b.Translation, t);
            Time = a.Time + (b.Time - a.Time) * t;
        }

        /// <summary>Sets this pose to exactly one frame.</summary>
        public void SetFrame(FaceFrame f)
        {
            Array.Copy(f.Weights, Weights, Weights.Length);
            Array.Copy(f.Rotations, Rotations, Rotations.Length);
            Translation = f.Translation;
            Time = f.Time;
        }
    }
}

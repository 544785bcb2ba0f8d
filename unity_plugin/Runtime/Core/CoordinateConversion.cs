namespace AvatarBridge.Core
{
    /// <summary>
    /// From the frame's conventions (right-handed, Y up, metres, the subject faces +Z and its own left is +X;
    /// docs/conventions.md) to Unity's (left-handed, Y up, metres, a character faces +Z and its left is −X).
    /// The map mirrors X (det −1), so a rotation's vector part maps to minus the mirrored axis.
    /// </summary>
    public static class CoordinateConversion
    {
        /// <summary>Canonical quaternion (x, y, z, w) to Unity: (x, −y, −z, w).</summary>
        public static Quat ToUnity(Quat q) { return new Quat(q.X, -q.Y, -q.Z, q.W); }

        /// <summary>Canonical position (x, y, z) to Unity: (−x, y, z).</summary>
        public static Vec3 ToUnity(Vec3 p) { return new Vec3(-p.X, p.Y, p.Z); }

        /// <summary>
        /// The local rotation to give a bone so that it turns by <paramref name="deltaUnity"/> (a rotation in the
        /// avatar root's axes, Unity convention, identity = rest) from its rest pose, on top of whatever its parent does.
        /// </summary>
        /// <param name="restLocal">The bone's local rotation in the rest pose.</param>
        /// <param name="restInRoot">The bone's rotation relative to the avatar root in the rest pose
        /// (root.rotation⁻¹ · bone.rotation).</param>
        /// <param name="deltaUnity">The frame's rotation for this bone, converted with <see cref="ToUnity(Quat)"/>.</param>
        public static Quat BoneLocalRotation(Quat restLocal, Quat restInRoot, Quat deltaUnity)
        {
            // The delta re-expressed in the bone's own rest axes, then applied after the rest local rotation.
            return (restLocal * (restInRoot.Inverse() * deltaUnity * restInRoot)).Normalized();
        }
    }
}

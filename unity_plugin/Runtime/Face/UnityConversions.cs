using AvatarBridge.Core;
using UnityEngine;

namespace AvatarBridge.Face
{
    /// <summary>Core value types to and from UnityEngine ones (no axis change: convert with CoordinateConversion first).</summary>
    public static class UnityConversions
    {
        /// <summary>Same components as a UnityEngine.Quaternion.</summary>
        public static Quaternion ToQuaternion(this Quat q) { return new Quaternion(q.X, q.Y, q.Z, q.W); }

        /// <summary>Same components as a core Quat.</summary>
        public static Quat ToQuat(this Quaternion q) { return new Quat(q.x, q.y, q.z, q.w); }

        /// <summary>Same components as a UnityEngine.Vector3.</summary>
        public static Vector3 ToVector3(this Vec3 v) { return new Vector3(v.X, v.Y, v.Z); }
    }
}

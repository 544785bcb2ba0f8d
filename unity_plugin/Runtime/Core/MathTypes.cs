using System;

namespace AvatarBridge.Core
{
    /// <summary>A 3-vector of floats (engine-free stand-in for UnityEngine.Vector3).</summary>
    [Serializable]
    public struct Vec3
    {
        /// <summary>X component.</summary>
        public float X;
        /// <summary>Y component.</summary>
        public float Y;
        /// <summary>Z component.</summary>
        public float Z;

        /// <summary>Creates a vector.</summary>
        public Vec3(float x, float y, float z) { X = x; Y = y; Z = z; }

        /// <summary>The zero vector.</summary>
        public static Vec3 Zero { get { return new Vec3(0f, 0f, 0f); } }

        /// <summary>Linear interpolation, <paramref name="t"/> unclamped.</summary>
        public static Vec3 Lerp(Vec3 a, Vec3 b, float t)
        {
            return new Vec3(a.X + (b.X - a.X) * t, a.Y + (b.Y - a.Y) * t, a.Z + (b.Z - a.Z) * t);
        }

        /// <inheritdoc/>
        public override string ToString() { return string.Format("({0:F4}, {1:F4}, {2:F4})", X, Y, Z); }
    }

    /// <summary>
    /// A quaternion (x, y, z, w) with the Hamilton product, the same algebra as UnityEngine.Quaternion;
    /// which handedness it means is a property of the space it is written in, not of the maths.
    /// </summary>
    [Serializable]
    public struct Quat
    {
        /// <summary>X (vector part).</summary>
        public float X;
        /// <summary>Y (vector part).</summary>
        public float Y;
        /// <summary>Z (vector part).</summary>
        public float Z;
        /// <summary>W (scalar part).</summary>
        public float W;

        /// <summary>Creates a quaternion from its components.</summary>
        public Quat(float x, float y, float z, float w) { X = x; Y = y; Z = z; W = w; }

        /// <summary>The identity rotation.</summary>
        public static Quat Identity { get { return new Quat(0f, 0f, 0f, 1f); } }

        /// <summary>Rotation of <paramref name="radians"/> about a unit <paramref name="axis"/> (right-hand rule in the algebra).</summary>
        public static Quat AxisAngle(Vec3 axis, double radians)
        {
            double s = Math.Sin(radians / 2), c = Math.Cos(radians / 2);
            return new Quat((float)(axis.X * s), (float)(axis.Y * s), (float)(axis.Z * s), (float)c);
        }

        /// <summary>Hamilton product: applying <paramref name="b"/> first, then <paramref name="a"/>.</summary>
        public static Quat operator *(Quat a, Quat b)
        {
            return new Quat(
                a.W * b.X + a.X * b.W + a.Y * b.Z - a.Z * b.Y,
                a.W * b.Y - a.X * b.Z + a.Y * b.W + a.Z * b.X,
                a.W * b.Z + a.X * b.Y - a.Y * b.X + a.Z * b.W,
                a.W * b.W - a.X * b.X - a.Y * b.Y - a.Z * b.Z);
        }

        /// <summary>The inverse of a unit quaternion (its conjugate).</summary>
        public Quat Inverse() { return new Quat(-X, -Y, -Z, W); }

        /// <summary>Dot product of the four components.</summary>
        public static float Dot(Quat a, Quat b) { return a.X * b.X + a.Y * b.Y + a.Z * b.Z + a.W * b.W; }

        /// <summary>This quaternion scaled to unit length (identity if it is zero or not finite).</summary>
        public Quat Normalized()
        {
            double n = Math.Sqrt((double)X * X + (double)Y * Y + (double)Z * Z + (double)W * W);
            if (!(n > 1e-12) || double.IsInfinity(n)) return Identity;
            return new Quat((float)(X / n), (float)(Y / n), (float)(Z / n), (float)(W / n));
        }

        /// <summary>Rotates a vector: q v q⁻¹ (what UnityEngine.Quaternion * Vector3 computes).</summary>
        public Vec3 Rotate(Vec3 v)
        {
            // t = 2 (q.xyz x v); v' = v + w t + q.xyz x t
            float tx = 2f * (Y * v.Z - Z * v.Y), ty = 2f * (Z * v.X - X * v.Z), tz = 2f * (X * v.Y - Y * v.X);
            return new Vec3(v.X + W * tx + (Y * tz - Z * ty), v.Y + W * ty + (Z * tx - X * tz),
                            v.Z + W * tz + (X * ty - Y * tx));
        }

        /// <summary>Angle in radians between two unit rotations.</summary>
        public static double Angle(Quat a, Quat b)
        {
            double d = Math.Min(1.0, Math.Abs((double)Dot(a, b)));
            return 2.0 * Math.Acos(d);
        }

        /// <summary>Spherical interpolation along the shortest arc, <paramref name="t"/> in 0..1.</summary>
        public static Quat Slerp(Quat a, Quat b, float t)
        {
            float d = Dot(a, b);
            if (d < 0f) { b = new Quat(-b.X, -b.Y, -b.Z, -b.W); d = -d; }
            if (d > 0.9995f)  // nearly parallel: normalised lerp is exact enough and stable
            {
                return new Quat(a.X + (b.X - a.X) * t, a.Y + (b.Y - a.Y) * t, a.Z + (b.Z - a.Z) * t,
                                a.W + (b.W - a.W) * t).Normalized();
            }
            double theta = Math.Acos(d), s = Math.Sin(theta);
            float wa = (float)(Math.Sin((1 - t) * theta) / s), wb = (float)(Math.Sin(t * theta) / s);
            return new Quat(a.X * wa + b.X * wb, a.Y * wa + b.Y * wb, a.Z * wa + b.Z * wb, a.W * wa + b.W * wb);
        }

        /// <inheritdoc/>
        public override string ToString() { return string.Format("({0:F4}, {1:F4}, {2:F4}, {3:F4})", X, Y, Z, W); }
    }
}

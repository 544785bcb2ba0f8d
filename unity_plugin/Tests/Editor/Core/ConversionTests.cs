using System;
using NUnit.Framework;

namespace AvatarBridge.Core.Tests
{
    /// <summary>Canonical (right-handed, subject's left = +X) to Unity (left-handed, character's left = −X).</summary>
    [TestFixture]
    public class ConversionTests
    {
        const double Deg = Math.PI / 180.0;
        static readonly Vec3 Forward = new Vec3(0, 0, 1), Up = new Vec3(0, 1, 0);

        static Quat Unity(Vec3 axis, double degrees)
        {
            return CoordinateConversion.ToUnity(Quat.AxisAngle(axis, degrees * Deg));
        }

        [Test]
        public void PositiveYawTurnsTheFaceToTheCharactersLeftInUnity()
        {
            // + about canonical +Y = the subject turns to its own left; in Unity a character's left is -X.
            Vec3 f = Unity(new Vec3(0, 1, 0), 30).Rotate(Forward);
            Assert.AreEqual(-Math.Sin(30 * Deg), f.X, 1e-6);
            Assert.AreEqual(Math.Cos(30 * Deg), f.Z, 1e-6);
            Quat q = Unity(new Vec3(0, 1, 0), 30);
            Assert.Less(q.Y, 0f, "Unity's positive yaw turns towards +X (right), so a left turn has negative y");
        }

        [Test]
        public void PositivePitchIsChinDownAndPositiveRollTiltsToTheRightShoulder()
        {
            Vec3 f = Unity(new Vec3(1, 0, 0), 20).Rotate(Forward);
            Assert.AreEqual(-Math.Sin(20 * Deg), f.Y, 1e-6, "chin down: forward dips");
            Assert.AreEqual(0.0, f.X, 1e-6);
            Vec3 u = Unity(new Vec3(0, 0, 1), 15).Rotate(Up);
            Assert.AreEqual(Math.Sin(15 * Deg), u.X, 1e-6, "top of the head moves to +X = the character's right in Unity");
        }

        [Test]
        public void ConversionEqualsMirroringTheRotatedVector()
        {
            // R' = M R M with M = diag(-1, 1, 1): rotate in canonical space, mirror; or mirror, rotate in Unity space.
            var rnd = new Random(7);
            for (int n = 0; n < 200; n++)
            {
                var axis = new Vec3((float)rnd.NextDouble() - 0.5f, (float)rnd.NextDouble() - 0.5f, (float)rnd.NextDouble() - 0.5f);
                float len = (float)Math.Sqrt(axis.X * axis.X + axis.Y * axis.Y + axis.Z * axis.Z);
                axis = new Vec3(axis.X / len, axis.Y / len, axis.Z / len);
                Quat q = Quat.AxisAngle(axis, (rnd.NextDouble() * 2 - 1) * Math.PI);
                var v = new Vec3((float)rnd.NextDouble(), (float)rnd.NextDouble(), (float)rnd.NextDouble());
                Vec3 a = CoordinateConversion.ToUnity(q.Rotate(v));
                Vec3 b = CoordinateConversion.ToUnity(q).Rotate(CoordinateConversion.ToUnity(v));
                Assert.AreEqual(a.X, b.X, 1e-5); Assert.AreEqual(a.Y, b.Y, 1e-5); Assert.AreEqual(a.Z, b.Z, 1e-5);
            }
            Vec3 p = CoordinateConversion.ToUnity(new Vec3(0.01f, 0.02f, 0.03f));
            Assert.AreEqual(-0.01f, p.X); Assert.AreEqual(0.02f, p.Y); Assert.AreEqual(0.03f, p.Z);
        }

        [Test]
        public void BoneLocalRotationTurnsABoneWithArbitraryRestAxesInAvatarSpace()
        {
            // A bone whose rest axes are twisted relative to the avatar root (as in Mixamo / RPM skeletons).
            Quat parentInRoot = Quat.AxisAngle(new Vec3(0, 0, 1), 0.7);
            Quat restLocal = Quat.AxisAngle(new Vec3(0.6f, 0.8f, 0f), 1.1);
            Quat restInRoot = parentInRoot * restLocal;
            Quat delta = Unity(new Vec3(0, 1, 0), 25);  // turn to the character's left
            Quat local = CoordinateConversion.BoneLocalRotation(restLocal, restInRoot, delta);
            Quat worldNow = parentInRoot * local;
            // The bone's rest "face forward" direction, whatever its local axis, must turn exactly by delta.
            Vec3 localAxisPointingForward = restInRoot.Inverse().Rotate(Forward);
            Vec3 f = worldNow.Rotate(localAxisPointingForward);
            Vec3 expected = delta.Rotate(Forward);
            Assert.AreEqual(expected.X, f.X, 1e-5); Assert.AreEqual(expected.Y, f.Y, 1e-5); Assert.AreEqual(expected.Z, f.Z, 1e-5);
            Assert.Less(f.X, 0f);
            // identity delta leaves the rest pose
            Assert.AreEqual(0.0, Quat.Angle(restLocal, CoordinateConversion.BoneLocalRotation(restLocal, restInRoot, Quat.Identity)), 1e-3);
        }

        [Test]
        public void SlerpTakesTheShortArcAndHitsTheMidpoint()
        {
            Quat a = Quat.AxisAngle(new Vec3(0, 1, 0), 0.2), b = Quat.AxisAngle(new Vec3(0, 1, 0), 0.6);
            Quat negB = new Quat(-b.X, -b.Y, -b.Z, -b.W);
            Assert.AreEqual(0.0, Quat.Angle(Quat.AxisAngle(new Vec3(0, 1, 0), 0.4), Quat.Slerp(a, negB, 0.5f)), 1e-3);
        }
    }
}

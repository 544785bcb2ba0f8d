using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;

namespace AvatarBridge.Core.Tests
{
    sealed class RecordingSink : IBlendshapeSink
    {
        public readonly Dictionary<string, float> Values = new Dictionary<string, float>();
        public void SetWeight(int mesh, int shapeIndex, float value) { Values[mesh + ":" + shapeIndex] = value; }
    }

    /// <summary>Name mapping against the real morph-target names of the shared avatars.</summary>
    [TestFixture]
    public class RigMappingTests
    {
        [Test]
        public void ReadyPlayerMeHeadBindsAll52OnEveryFaceMesh()
        {
            var glb = GltfMorphTargets.Read(GltfMorphTargets.Avatar("brunette-t.glb"));
            var withTargets = glb.Where(m => m.TargetNames.Count > 0).ToList();
            CollectionAssert.AreEquivalent(new[] { "EyeLeft", "EyeRight", "Wolf3D_Head", "Wolf3D_Teeth" },
                                           withTargets.Select(m => m.Name).ToArray());
            foreach (var m in withTargets)
            {
                Assert.AreEqual(67, m.TargetNames.Count, m.Name);
                CollectionAssert.AreEqual(new[] { 67 }, m.TargetsPerPrimitive, m.Name);
            }

            var rig = GltfMorphTargets.RigMeshes(GltfMorphTargets.Avatar("brunette-t.glb"));
            var map = FaceRigMap.Build(rig, null);
            Assert.AreEqual(4 * 52, map.Bindings.Count);
            CollectionAssert.IsEmpty(map.MissingArkitNames);
            Assert.AreEqual(4 * 15, map.UnmatchedShapes.Count);
            foreach (string u in map.UnmatchedShapes) StringAssert.Contains("/viseme_", u);
            // every binding points at the shape with exactly that ARKit name
            foreach (var b in map.Bindings)
                Assert.AreEqual(ArkitNames.Name(b.Arkit), rig[b.Mesh].ShapeNames[b.ShapeIndex]);
        }

        [Test]
        public void VroidFaceBindsArkitAndLeavesFclShapesAlone()
        {
            var glb = GltfMorphTargets.Read(GltfMorphTargets.Avatar("vroid.glb"));
            var face = glb.Single(m => m.TargetNames.Count > 0);
            Assert.AreEqual("Face (merged)(Clone)", face.Name);
            CollectionAssert.Contains(face.NodeNames, "Face");
            Assert.AreEqual(124, face.TargetNames.Count);

            var rig = GltfMorphTargets.RigMeshes(GltfMorphTargets.Avatar("vroid.glb"));
            var map = FaceRigMap.Build(rig, null);
            Assert.AreEqual(52, map.Bindings.Count);
            Assert.AreEqual(52, map.BoundArkitCount);
            Assert.AreEqual(124 - 52, map.UnmatchedShapes.Count);
            Assert.IsTrue(map.UnmatchedShapes.Any(u => u.StartsWith("Face/Fcl_", StringComparison.Ordinal)));
            Assert.IsFalse(map.Bindings.Any(b => rig[0].ShapeNames[b.ShapeIndex].StartsWith("Fcl_", StringComparison.Ordinal)));
            int jaw = face.TargetNames.IndexOf("jawOpen");
            Assert.IsTrue(map.Bindings.Any(b => b.ShapeIndex == jaw && b.Arkit == ArkitNames.IndexOf("jawOpen")));
        }

        [Test]
        public void ApplyWritesGainOffsetClampTimes100ToEveryMesh()
        {
            var rig = GltfMorphTargets.RigMeshes(GltfMorphTargets.Avatar("brunette-t.glb"));
            var map = FaceRigMap.Build(rig, null);
            int jaw = ArkitNames.IndexOf("jawOpen"), blink = ArkitNames.IndexOf("eyeBlinkLeft");
            map.SetCurve(jaw, new BlendshapeCurve(1.5f, 0.1f, 0f, 0.8f));
            var pose = new FacePose();
            pose.Weights[jaw] = 0.4f;    // 0.4*1.5+0.1 = 0.7 -> 70
            pose.Weights[blink] = 0.25f;  // identity -> 25
            var sink = new RecordingSink();
            map.Apply(pose, sink);
            Assert.AreEqual(4 * 52, sink.Values.Count);
            for (int m = 0; m < rig.Count; m++)
            {
                Assert.AreEqual(70f, sink.Values[m + ":" + rig[m].ShapeNames.IndexOf("jawOpen")], 1e-4f);
                Assert.AreEqual(25f, sink.Values[m + ":" + rig[m].ShapeNames.IndexOf("eyeBlinkLeft")], 1e-4f);
                Assert.AreEqual(0f, sink.Values[m + ":" + rig[m].ShapeNames.IndexOf("mouthClose")], 1e-6f);
                Assert.IsFalse(sink.Values.ContainsKey(m + ":" + rig[m].ShapeNames.IndexOf("viseme_PP")));
            }
            pose.Weights[jaw] = 1f;  // 1.6 clamps at 0.8
            map.Apply(pose, sink);
            Assert.AreEqual(80f, sink.Values["0:" + rig[0].ShapeNames.IndexOf("jawOpen")], 1e-4f);
        }

        [Test]
        public void RenamedRigStillBindsLooselyAndOverridesWin()
        {
            // The real Wolf3D names rewritten the way other exporters spell them.
            var real = GltfMorphTargets.RigMeshes(GltfMorphTargets.Avatar("brunette-t.glb"))
                                       .Single(m => m.Name == "Wolf3D_Head").ShapeNames;
            var renamed = new List<string>();
            foreach (string n in real)
            {
                string r = char.ToUpperInvariant(n[0]) + n.Substring(1);            // PascalCase (Unreal, Live Link)
                if (r.EndsWith("Left", StringComparison.Ordinal)) r = r.Substring(0, r.Length - 4) + "_L";
                else if (r.EndsWith("Right", StringComparison.Ordinal)) r = r.Substring(0, r.Length - 5) + "_R";
                renamed.Add("blendShape1." + r);                                      // Maya/FBX blendShape node prefix
            }
            var map = FaceRigMap.Build(new[] { new RigMesh("Head", renamed) }, null);
            CollectionAssert.IsEmpty(map.MissingArkitNames);
            foreach (var b in map.Bindings) Assert.AreEqual(ArkitNames.Name(b.Arkit), real[b.ShapeIndex]);

            // A custom rig: an override binds an arbitrary name, a missing shape is reported once.
            var custom = new List<string>(real);
            custom[custom.IndexOf("jawOpen")] = "Mouth_Open";
            custom.Remove("tongueOut");
            custom.Remove("cheekPuff");
            var overrides = new Dictionary<string, string> { { "Mouth_Open", "jawOpen" } };
            var m2 = FaceRigMap.Build(new[] { new RigMesh("Head", custom) }, overrides);
            CollectionAssert.AreEquivalent(new[] { "cheekPuff", "tongueOut" }, m2.MissingArkitNames);
            Assert.AreEqual(ArkitNames.IndexOf("jawOpen"), m2.Bindings.Single(b => custom[b.ShapeIndex] == "Mouth_Open").Arkit);
            var without = FaceRigMap.Build(new[] { new RigMesh("Head", custom) }, null);
            CollectionAssert.AreEquivalent(new[] { "cheekPuff", "jawOpen", "tongueOut" }, without.MissingArkitNames);
        }

        [Test]
        public void ExactNameWinsOverLooseDuplicateAndBadOverrideIsRejected()
        {
            var map = FaceRigMap.Build(new[] { new RigMesh("M", new[] { "JawOpen", "jawOpen" }) }, null);
            Assert.AreEqual(1, map.Bindings.Count);
            Assert.AreEqual(1, map.Bindings[0].ShapeIndex);
            var ex = Assert.Throws<ArgumentException>(() =>
                FaceRigMap.Build(new[] { new RigMesh("M", new[] { "A" }) }, new Dictionary<string, string> { { "A", "smile" } }));
            StringAssert.Contains("'smile'", ex.Message);
        }

        [Test]
        public void NormalizeNameHandlesSideMarkersAndPrefixes()
        {
            Assert.AreEqual("eyeblinkleft", FaceRigMap.NormalizeName("eyeBlink_L"));
            Assert.AreEqual("mouthsmileright", FaceRigMap.NormalizeName("Mouth Smile.R"));
            Assert.AreEqual("jawopen", FaceRigMap.NormalizeName("ARKit_JawOpen"));
            Assert.AreEqual("jawopen", FaceRigMap.NormalizeName("blendShape1.jawOpen"));
            Assert.AreEqual(-1, FaceRigMap.MatchArkit("Fcl_MTH_A", null));
            Assert.AreEqual(-1, FaceRigMap.MatchArkit("viseme_aa", null));
        }

        [Test]
        public void CurveClampsAndRejectsNaN()
        {
            var c = new BlendshapeCurve(2f, -0.5f, 0f, 1f);
            Assert.AreEqual(0f, c.Evaluate(0.1f));
            Assert.AreEqual(0.5f, c.Evaluate(0.5f), 1e-6f);
            Assert.AreEqual(1f, c.Evaluate(0.9f));
            Assert.AreEqual(0f, c.Evaluate(float.NaN));
        }
    }
}

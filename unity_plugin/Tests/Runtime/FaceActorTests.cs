using System.Collections;
using AvatarBridge.Core;
using AvatarBridge.Device;
using AvatarBridge.Face;
using AvatarBridge.Transport;
using NUnit.Framework;
using UnityEngine;
using UnityEngine.TestTools;

namespace AvatarBridge.Tests
{
    /// <summary>PlayMode tests: the actor drives a real SkinnedMeshRenderer and real transforms; the device releases its channel.</summary>
    public class FaceActorTests
    {
        GameObject root;

        [TearDown]
        public void TearDown()
        {
            if (root != null) Object.Destroy(root);
        }

        static Mesh MeshWithShapes(params string[] names)
        {
            var mesh = new Mesh { name = "TestFace" };
            mesh.vertices = new[] { Vector3.zero, Vector3.right, Vector3.up };
            mesh.triangles = new[] { 0, 1, 2 };
            var delta = new[] { Vector3.forward, Vector3.forward, Vector3.forward };
            foreach (string n in names) mesh.AddBlendShapeFrame(n, 100f, delta, null, null);
            return mesh;
        }

        FaceActor MakeAvatar(FaceMapper mapper)
        {
            root = new GameObject("Avatar");
            root.SetActive(false);
            var face = new GameObject("Wolf3D_Head");
            face.transform.SetParent(root.transform, false);
            var smr = face.AddComponent<SkinnedMeshRenderer>();
            smr.sharedMesh = MeshWithShapes("viseme_aa", "jawOpen", "EyeBlink_L");
            var neck = new GameObject("Neck").transform;
            neck.SetParent(root.transform, false);
            neck.localRotation = Quaternion.Euler(10f, 0f, 30f);  // rest axes not aligned with the avatar's
            var head = new GameObject("Head").transform;
            head.SetParent(neck, false);
            head.localPosition = Vector3.up * 0.1f;
            var actor = root.AddComponent<FaceActor>();
            actor.Mapper = mapper;
            root.SetActive(true);
            return actor;
        }

        [UnityTest]
        public IEnumerator AppliesWeightsTimes100AndTurnsTheHeadToTheCharactersLeft()
        {
            var mapper = ScriptableObject.CreateInstance<DefaultFaceMapper>();
            mapper.WeightSmoothing = 0f;
            mapper.RotationSmoothing = 0f;
            mapper.BoneSource = BoneSource.Names;
            FaceActor actor = MakeAvatar(mapper);
            Transform head = root.transform.Find("Neck/Head");
            Vector3 restForward = Quaternion.Inverse(root.transform.rotation) * head.forward;

            var pose = new FacePose();
            pose.Weights[ArkitNames.IndexOf("jawOpen")] = 0.5f;
            pose.Weights[ArkitNames.IndexOf("eyeBlinkLeft")] = 0.25f;
            pose.Rotations[ArkitNames.Head] = Quat.AxisAngle(new Vec3(0, 1, 0), 20 * Mathf.Deg2Rad);  // subject's left
            actor.SetPose(pose);
            yield return null;  // LateUpdate

            var smr = root.GetComponentInChildren<SkinnedMeshRenderer>();
            Assert.AreEqual(0f, smr.GetBlendShapeWeight(0), 1e-4f, "viseme_aa is not an ARKit shape");
            Assert.AreEqual(50f, smr.GetBlendShapeWeight(1), 1e-3f);
            Assert.AreEqual(25f, smr.GetBlendShapeWeight(2), 1e-3f, "EyeBlink_L matches eyeBlinkLeft");
            Vector3 f = Quaternion.Inverse(root.transform.rotation) * head.forward;
            Assert.Less(f.x, restForward.x - 0.2f, "the head turned towards -X, the character's left in Unity");
            // +20 deg about canonical +Y is -20 deg about Unity's +Y, applied in the avatar's axes
            Vector3 expected = Quaternion.Euler(0f, -20f, 0f) * restForward;
            Assert.Less(Vector3.Angle(expected, f), 0.1f);
            string warnings = string.Join("; ", new System.Collections.Generic.List<string>(actor.Binding.Warnings).ToArray());
            StringAssert.Contains("50 ARKit shapes are on none of the meshes", warnings);
        }

        [UnityTest]
        public IEnumerator DeviceRetriesAnUnreachableServerAndReleasesItsChannel()
        {
            root = new GameObject("Device");
            var device = root.AddComponent<BridgeClientDevice>();
            device.ServerAddress = "http://127.0.0.1:9";  // discard port: nothing listens
            device.StartMicrophone(null);
            float until = Time.realtimeSinceStartup + 10f;
            while (device.Status != BridgeStatus.Retrying && Time.realtimeSinceStartup < until)
                yield return null;  // the connection is tried before the microphone is opened
            Assert.AreEqual(BridgeStatus.Retrying, device.Status, device.StatusMessage);
            StringAssert.Contains("unreachable", device.StatusMessage);
            Object.Destroy(root);
            root = null;
            yield return null;
            Assert.AreEqual(0, ChannelRegistry.Count, "no channel may outlive its device");
        }
    }
}

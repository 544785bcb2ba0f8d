using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using NUnit.Framework;

namespace AvatarBridge.Core.Tests
{
    /// <summary>
    /// Frames of a real avatar-bridge stream (recorded by tests/test_unity_core.py from a real server over gRPC)
    /// through the client's path: header layout, jittered and reordered arrival into the jitter buffer, the
    /// playback clock, and the mapper on the real Ready Player Me rig names.
    /// </summary>
    [TestFixture]
    public class ServerStreamTests
    {
        sealed class Recording
        {
            public string[] Names, Bones;
            public int Fps;
            public double LookaheadMs;
            public List<FaceFrame> Frames = new List<FaceFrame>();
            public List<float[]> RawRotations = new List<float[]>();
        }

        static Recording Load()
        {
            string path = Environment.GetEnvironmentVariable("AVATAR_BRIDGE_FRAMES_FILE");
            if (string.IsNullOrEmpty(path) || !File.Exists(path))
                Assert.Ignore("no recorded stream: tests/test_unity_core.py records one from a real server (AVATAR_BRIDGE_FRAMES_FILE)");
            var rec = new Recording();
            StreamLayout layout = null;
            foreach (string line in File.ReadLines(path))
            {
                string[] p = line.Split(' ');
                if (p[0] == "names") rec.Names = p.Skip(1).ToArray();
                else if (p[0] == "bones") rec.Bones = p.Skip(1).ToArray();
                else if (p[0] == "stream")
                {
                    rec.Fps = int.Parse(p[1], CultureInfo.InvariantCulture);
                    rec.LookaheadMs = double.Parse(p[2], CultureInfo.InvariantCulture);
                    layout = new StreamLayout(rec.Names, rec.Bones);
                    CollectionAssert.IsEmpty(layout.UnknownNames);
                }
                else if (p[0] == "frame")
                {
                    var v = p.Skip(3).Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray();
                    var w = v.Take(layout.WeightCount).ToArray();
                    var r = v.Skip(layout.WeightCount).Take(4 * layout.BoneCount).ToArray();
                    var f = new FaceFrame();
                    layout.Fill(f, long.Parse(p[1], CultureInfo.InvariantCulture),
                                double.Parse(p[2], CultureInfo.InvariantCulture), w, r, false, Vec3.Zero);
                    rec.Frames.Add(f);
                    rec.RawRotations.Add(r);
                }
            }
            return rec;
        }

        [Test]
        public void RealStreamPlaysOnTimeThroughBufferClockAndRig()
        {
            Recording rec = Load();
            Assert.Greater(rec.Frames.Count, 100);
            List<RigMesh> rig = GltfMorphTargets.RigMeshes(GltfMorphTargets.Avatar("brunette-t.glb"));
            FaceRigMap map = FaceRigMap.Build(rig, null);
            int head = rig.FindIndex(m => m.Name == "Wolf3D_Head");
            int jawShape = rig[head].ShapeNames.IndexOf("jawOpen");
            int jaw = ArkitNames.IndexOf("jawOpen");

            // Arrival: each frame lands at its time + look-ahead + 0..50 ms of network delay, in that (shuffled) order.
            var rnd = new Random(3);
            double audioZero = 500.0;
            var arrivals = rec.Frames.Select(f => new KeyValuePair<double, FaceFrame>(
                audioZero + f.Time + rec.LookaheadMs / 1000 + rnd.NextDouble() * 0.05, f)).OrderBy(a => a.Key).ToList();
            var clock = new PlaybackClock();
            clock.Start(audioZero, PlaybackClock.DelaySeconds(rec.LookaheadMs, rec.Fps, 60));
            var buffer = new JitterBuffer(1024);
            var pose = new FacePose();
            var sink = new RecordingSink();
            int next = 0, checkedFrames = 0;
            double maxJaw = 0;
            foreach (FaceFrame target in rec.Frames)
            {
                // the DSP clock reaches the moment frame k is due
                double dsp = clock.StartDspTime + target.Time;
                while (next < arrivals.Count && arrivals[next].Key <= dsp) buffer.Push(arrivals[next++].Value);
                if (next == arrivals.Count) buffer.MarkEnded();
                Assert.AreNotEqual(SampleResult.Waiting, buffer.Sample(clock.StreamTime(dsp), pose));
                Assert.AreEqual(target.Time, pose.Time, 1e-9);
                for (int i = 0; i < 52; i++) Assert.AreEqual(target.Weights[i], pose.Weights[i], 1e-6f, ArkitNames.Name(i));
                map.Apply(pose, sink);
                Assert.AreEqual(100f * target.Weights[jaw], sink.Values[head + ":" + jawShape], 1e-4f);
                float[] raw = rec.RawRotations[checkedFrames];
                Quat u = CoordinateConversion.ToUnity(pose.Rotations[ArkitNames.Head]);
                Quat expected = new Quat(raw[0], -raw[1], -raw[2], raw[3]);  // docs/conventions.md
                Assert.AreEqual(0.0, Quat.Angle(expected.Normalized(), u), 1e-3);
                maxJaw = Math.Max(maxJaw, target.Weights[jaw]);
                checkedFrames++;
            }
            FrameCounters c = buffer.Counters;
            Assert.AreEqual(rec.Frames.Count, c.Received);
            Assert.AreEqual(0, c.Late, c.ToString());
            Assert.AreEqual(0, c.Underruns, c.ToString());
            Assert.Greater(maxJaw, 0.2, "real speech opens the jaw");
        }
    }
}

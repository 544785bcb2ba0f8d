using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using NUnit.Framework;

namespace AvatarBridge.Core.Tests
{
    /// <summary>
    /// <see cref="SpeechTimeline"/> on real <c>Speak</c> responses (recorded in arrival order by tests/test_unity_core.py
    /// from a real server over gRPC, espeak-ng's en-us voice): audio and frames on one clock, the frame count the
    /// one-clock rule gives, lip closures of /m b p/, and a barge-in whose eased frames supersede the held ones.
    /// </summary>
    [TestFixture]
    public class SpeakTimelineTests
    {
        const int JawOpen = 17;

        sealed class Replay
        {
            public SpeechTimeline Timeline;
            public string Voice;
            public long FramesSent, Sentences;
            public double AudioSeconds;
            public bool Stopped, StatusSeen;
            public long K0 = -1;
        }

        static Replay Play(string variable)
        {
            string path = Environment.GetEnvironmentVariable(variable);
            if (string.IsNullOrEmpty(path) || !File.Exists(path))
                Assert.Ignore("no recorded Speak: tests/test_unity_core.py records one from a real server (" + variable + ")");
            var rep = new Replay();
            string[] names = null, bones = null;
            StreamLayout layout = null;
            foreach (string line in File.ReadLines(path))
            {
                string[] p = line.Split(' ');
                switch (p[0])
                {
                    case "speak":
                        rep.Timeline = new SpeechTimeline(int.Parse(p[1], CultureInfo.InvariantCulture), int.Parse(p[2], CultureInfo.InvariantCulture));
                        rep.Voice = p[3];
                        break;
                    case "names": names = p.Skip(1).ToArray(); break;
                    case "bones":
                        bones = p.Skip(1).ToArray();
                        layout = new StreamLayout(names, bones);
                        CollectionAssert.IsEmpty(layout.UnknownNames);
                        break;
                    case "audio":
                        byte[] pcm = Hex(p.Length > 2 ? p[2] : "");
                        rep.Timeline.AddAudio(long.Parse(p[1], CultureInfo.InvariantCulture), pcm, 0, pcm.Length);
                        break;
                    case "stop":
                        rep.K0 = rep.Timeline.Stop(double.Parse(p[1], CultureInfo.InvariantCulture));
                        break;
                    case "frame":
                        var v = p.Skip(3).Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray();
                        var f = new FaceFrame();
                        layout.Fill(f, long.Parse(p[1], CultureInfo.InvariantCulture), double.Parse(p[2], CultureInfo.InvariantCulture),
                                    v.Take(layout.WeightCount).ToArray(), v.Skip(layout.WeightCount).Take(4 * layout.BoneCount).ToArray(),
                                    false, Vec3.Zero);
                        rep.Timeline.AddFrame(f);
                        break;
                    case "status":
                        rep.FramesSent = long.Parse(p[1], CultureInfo.InvariantCulture);
                        rep.AudioSeconds = double.Parse(p[2], CultureInfo.InvariantCulture);
                        rep.Stopped = p[3] == "1";
                        rep.Sentences = long.Parse(p[4], CultureInfo.InvariantCulture);
                        rep.StatusSeen = true;
                        rep.Timeline.Complete();
                        break;
                }
            }
            Assert.IsNotNull(rep.Timeline, "no SpeakHeader recorded");
            Assert.IsTrue(rep.StatusSeen, "no SpeakStatus recorded");
            return rep;
        }

        static byte[] Hex(string s)
        {
            var b = new byte[s.Length / 2];
            for (int i = 0; i < b.Length; i++) b[i] = byte.Parse(s.Substring(2 * i, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            return b;
        }

        [Test]
        public void SpokenLineHasAudioAndFramesOnOneClock()
        {
            var rep = Play("AVATAR_BRIDGE_SPEAK_FILE");
            var tl = rep.Timeline;
            Assert.AreEqual("espeak:en-us", rep.Voice);
            Assert.AreEqual(60, tl.Fps);
            Assert.Greater(tl.ReceivedSamples, tl.SampleRate / 2, "over half a second of speech");
            Assert.AreEqual(rep.AudioSeconds, (double)tl.ReceivedSamples / tl.SampleRate, 1e-6);
            // ceil(samples * fps / sample_rate) frames, frame k at round(k * sr / fps) / sr
            long want = (tl.ReceivedSamples * tl.Fps + tl.SampleRate - 1) / tl.SampleRate;
            Assert.AreEqual(want, tl.FrameCount);
            Assert.AreEqual(rep.FramesSent, tl.FrameCount);
            Assert.IsFalse(rep.Stopped);
            for (int k = 0; k < tl.FrameCount; k++)
            {
                long sample = (2L * k * tl.SampleRate + tl.Fps) / (2L * tl.Fps);
                Assert.AreEqual(k, tl.FrameAt(k).Index);
                Assert.AreEqual((double)sample / tl.SampleRate, tl.FrameAt(k).Time, 1e-9);
            }

            // Play it through as an audio device would (1024-sample callbacks); the face follows the samples played.
            var buf = new float[1024];
            var pose = new FacePose();
            var jaw = new List<float>();
            float peak = 0f;
            while (!tl.Finished)
            {
                int real = tl.ReadAudio(buf, 0, buf.Length);
                for (int i = 0; i < real; i++) peak = Math.Max(peak, Math.Abs(buf[i]));
                Assert.IsTrue(tl.Sample(tl.PlaybackTime, pose));
                jaw.Add(pose.Weights[JawOpen]);
                Assert.Less(jaw.Count, 100000);
            }
            Assert.AreEqual(tl.ReceivedSamples, tl.PlayedSamples);
            Assert.AreEqual(0, tl.UnderrunSamples);
            Assert.Greater(peak, 0.03f, "the audio is not silent");
            Assert.AreEqual(0, tl.ReadAudio(buf, 0, buf.Length), "nothing after the end");

            // Frame by frame: the mouth opens, starts and ends at rest, and shuts at least twice between its first
            // and last open frame ("Mama made a bumpy map": /m/, /b/, /p/ close the lips).
            var j = Enumerable.Range(0, tl.FrameCount).Select(k => tl.FrameAt(k).Weights[JawOpen]).ToArray();
            float max = j.Max();
            Assert.Greater(max, 0.2f);
            Assert.Less(j[0], 0.02f);
            Assert.Less(j[j.Length - 1], 0.02f);
            int first = Array.FindIndex(j, x => x >= 0.5f * max), last = Array.FindLastIndex(j, x => x >= 0.5f * max);
            int closures = 0;
            bool shut = false;
            for (int k = first; k <= last; k++)
            {
                bool s = j[k] < 0.25f * max;
                if (s && !shut) closures++;
                shut = s;
            }
            Assert.GreaterOrEqual(closures, 2, "lip closures inside the utterance");
            Assert.Greater(jaw.Max(), 0.2f, "sampled at the playback clock, the jaw moves too");
        }

        [Test]
        public void BargeInDropsLaterAudioAndEasesTheFaceToRest()
        {
            var rep = Play("AVATAR_BRIDGE_SPEAK_STOP_FILE");
            var tl = rep.Timeline;
            Assert.IsTrue(rep.Stopped && tl.Stopped);
            Assert.AreEqual(1.0, rep.AudioSeconds, 1e-3);
            Assert.Less(rep.Sentences, 300);
            Assert.AreEqual(30, rep.K0);  // ceil(1.0 s * 30 fps)
            Assert.AreEqual(tl.SampleRate, tl.ReceivedSamples, "audio after the stop is dropped");
            Assert.Greater(tl.SupersededFrames, 0, "the eased frames replaced frames already held");
            Assert.AreEqual(30 + 8, tl.FrameCount, "k0 plus 0.25 s of easing");
            for (int k = 0; k < tl.FrameCount; k++) Assert.AreEqual(k, tl.FrameAt(k).Index);
            var rest = tl.FrameAt(tl.FrameCount - 1);
            Assert.Less(rest.Weights.Max(), 1e-6f);
            Assert.AreEqual(1f, rest.Rotations[0].W, 1e-6f);
            for (int k = 30; k < tl.FrameCount; k++)
                Assert.LessOrEqual(tl.FrameAt(k).Weights[JawOpen], tl.FrameAt(k - 1).Weights[JawOpen] + 1e-6f, "monotone to rest at " + k);
        }

        [Test]
        public void ChunksMustBeBackToBackAndFramesWithoutGaps()
        {
            var tl = new SpeechTimeline(16000, 30);
            tl.AddAudio(0, new byte[] { 0, 64, 0, 192 }, 0, 4);
            Assert.Throws<InvalidOperationException>(() => tl.AddAudio(5, new byte[2], 0, 2));
            Assert.Throws<ArgumentException>(() => tl.AddAudio(2, new byte[3], 0, 3));
            var buf = new float[4];
            Assert.AreEqual(2, tl.ReadAudio(buf, 0, 4));
            Assert.AreEqual(0.5f, buf[0]);
            Assert.AreEqual(-0.5f, buf[1]);
            Assert.AreEqual(0f, buf[2]);
            Assert.AreEqual(2, tl.PlayedSamples, "the clock waits for late audio");
            Assert.AreEqual(2, tl.UnderrunSamples);
            tl.AddFrame(new FaceFrame { Index = 0 });
            Assert.Throws<InvalidOperationException>(() => tl.AddFrame(new FaceFrame { Index = 2 }));
            var pose = new FacePose();
            Assert.IsTrue(tl.Sample(0.5, pose));
            Assert.IsFalse(new SpeechTimeline(16000, 30).Sample(0, pose));
        }
    }
}

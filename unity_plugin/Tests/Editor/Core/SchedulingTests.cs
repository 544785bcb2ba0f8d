using System;
using System.Collections.Generic;
using NUnit.Framework;

namespace AvatarBridge.Core.Tests
{
    /// <summary>Jitter buffer, interpolation, late/out-of-order frames, playback clock, smoothing, header layout.</summary>
    [TestFixture]
    public class SchedulingTests
    {
        const int Fps = 30, Rate = 16000;

        // Frame k of a 16 kHz / 30 fps stream, with the server's integer time codes (docs/conventions.md).
        static FaceFrame Frame(long k, float jaw)
        {
            long sample = (2 * k * Rate + Fps) / (2 * Fps);
            var f = new FaceFrame { Index = k, Time = (double)sample / Rate };
            f.Weights[ArkitNames.IndexOf("jawOpen")] = jaw;
            f.Rotations[ArkitNames.Head] = Quat.AxisAngle(new Vec3(0, 1, 0), 0.01 * k);
            return f;
        }

        static float Jaw(FacePose p) { return p.Weights[ArkitNames.IndexOf("jawOpen")]; }

        [Test]
        public void InterpolatesBetweenNeighboursAndHoldsBeforeTheFirstFrame()
        {
            var buf = new JitterBuffer(64);
            var pose = new FacePose();
            Assert.AreEqual(SampleResult.Waiting, buf.Sample(0.0, pose));
            buf.Push(Frame(0, 0f));
            buf.Push(Frame(1, 0.3f));
            buf.Push(Frame(2, 0.9f));
            Assert.AreEqual(SampleResult.Waiting, buf.Sample(-0.05, pose));
            Assert.AreEqual(0f, Jaw(pose), "untouched while waiting");
            double t1 = Frame(1, 0).Time, t2 = Frame(2, 0).Time;
            Assert.AreEqual(SampleResult.Interpolated, buf.Sample(t1 + (t2 - t1) * 0.25, pose));
            Assert.AreEqual(0.3f + 0.6f * 0.25f, Jaw(pose), 1e-5f);
            Assert.AreEqual(0.0, Quat.Angle(Quat.AxisAngle(new Vec3(0, 1, 0), 0.0125), pose.Rotations[ArkitNames.Head]), 1e-3);
            Assert.AreEqual(2, buf.Count, "frame 0 is behind playback and was released; frame 1 stays as left neighbour");
        }

        [Test]
        public void LateFramesAreDroppedAndOutOfOrderFramesInTimeAreUsed()
        {
            var buf = new JitterBuffer(64);
            var pose = new FacePose();
            buf.Push(Frame(0, 0f));
            buf.Push(Frame(1, 0.1f));
            Assert.AreEqual(PushResult.Accepted, buf.Push(Frame(3, 0.3f)));
            Assert.AreEqual(PushResult.Reordered, buf.Push(Frame(2, 0.8f)));   // late on the wire, still ahead of playback
            Assert.AreEqual(PushResult.DroppedDuplicate, buf.Push(Frame(3, 0.5f)));
            buf.Sample(Frame(2, 0).Time, pose);
            Assert.AreEqual(0.8f, Jaw(pose), 1e-6f, "the reordered frame is shown at its own time");
            Assert.AreEqual(PushResult.DroppedLate, buf.Push(Frame(1, 0.7f)));  // playback already passed frame 1
            var c = buf.Counters;
            Assert.AreEqual(6, c.Received);
            Assert.AreEqual(1, c.Late);
            Assert.AreEqual(1, c.Reordered);
            Assert.AreEqual(1, c.Duplicates);
        }

        [Test]
        public void MissingFramesAreBridgedAndCountedAndStarvationIsOneUnderrun()
        {
            var buf = new JitterBuffer(64);
            var pose = new FacePose();
            buf.Push(Frame(0, 0f));
            buf.Push(Frame(4, 0.8f));    // 1..3 never came
            double t4 = Frame(4, 0).Time;
            buf.Sample(t4 / 2, pose);
            Assert.AreEqual(0.4f, Jaw(pose), 1e-4f);
            buf.Sample(t4 * 0.75, pose);
            Assert.AreEqual(3, buf.Counters.Concealed, "the gap is counted once");
            for (int i = 1; i <= 5; i++)
                Assert.AreEqual(SampleResult.Held, buf.Sample(t4 + 0.01 * i, pose));
            Assert.AreEqual(0.8f, Jaw(pose), 1e-6f, "the newest pose is held");
            Assert.AreEqual(1, buf.Counters.Underruns);
            buf.Push(Frame(5, 0.2f));
            buf.Push(Frame(6, 0.2f));
            buf.Sample(Frame(5, 0).Time + 0.001, pose);
            buf.MarkEnded();
            buf.Sample(10.0, pose);
            Assert.AreEqual(1, buf.Counters.Underruns, "running past the last frame of an ended stream is no underrun");
        }

        [Test]
        public void OverflowDropsTheOldestAndResetStartsClean()
        {
            var buf = new JitterBuffer(8);
            for (int k = 0; k < 20; k++) buf.Push(Frame(k, 0f));
            Assert.AreEqual(8, buf.Count);
            Assert.AreEqual(12, buf.Counters.Overflow);
            buf.Reset();
            Assert.AreEqual(0, buf.Count);
            Assert.AreEqual(0, buf.Counters.Received);
            Assert.AreEqual(PushResult.Accepted, buf.Push(Frame(0, 0f)));
        }

        /// <summary>
        /// A simulated stream: frame k leaves the server at its time + look-ahead and reaches the client after a
        /// random network delay of up to 80 ms, shuffled. The actor samples at 90 Hz on the playback clock.
        /// With a jitter budget above the worst delay nothing is late and nothing starves; with too small a one, it does.
        /// </summary>
        [Test]
        public void PlaybackClockWithEnoughJitterBudgetShowsEveryFrameOnTime()
        {
            FrameCounters ok = Simulate(lookaheadMs: 120, jitterBudgetMs: 100, maxNetworkMs: 80, seed: 1);
            Assert.AreEqual(0, ok.Late, ok.ToString());
            Assert.AreEqual(0, ok.Underruns, ok.ToString());
            Assert.AreEqual(0, ok.Concealed, ok.ToString());
            Assert.Greater(ok.Reordered, 0, "the simulation does reorder frames: " + ok);
            FrameCounters tight = Simulate(lookaheadMs: 120, jitterBudgetMs: 20, maxNetworkMs: 80, seed: 1);
            Assert.Greater(tight.Late + tight.Underruns, 0, tight.ToString());
        }

        static FrameCounters Simulate(double lookaheadMs, double jitterBudgetMs, double maxNetworkMs, int seed)
        {
            var rnd = new Random(seed);
            const int frames = 300;  // 10 s
            var arrivals = new List<KeyValuePair<double, FaceFrame>>();
            double audioZero = 1000.0;  // DSP time the first audio sample was sent
            for (int k = 0; k < frames; k++)
            {
                FaceFrame f = Frame(k, (float)(k % 10) / 10f);
                double arrive = audioZero + f.Time + lookaheadMs / 1000 + rnd.NextDouble() * maxNetworkMs / 1000;
                arrivals.Add(new KeyValuePair<double, FaceFrame>(arrive, f));
            }
            arrivals.Sort((a, b) => a.Key.CompareTo(b.Key));
            var clock = new PlaybackClock();
            clock.Start(audioZero, PlaybackClock.DelaySeconds(lookaheadMs, Fps, jitterBudgetMs));
            var buf = new JitterBuffer(256);
            var pose = new FacePose();
            int next = 0;
            for (double dsp = audioZero; next < arrivals.Count || buf.Count > 1; dsp += 1.0 / 90)
            {
                while (next < arrivals.Count && arrivals[next].Key <= dsp) buf.Push(arrivals[next++].Value);
                if (next == arrivals.Count) buf.MarkEnded();
                double t = clock.StreamTime(dsp);
                if (t >= 0) buf.Sample(t, pose);
                if (dsp > audioZero + 30) break;
            }
            return buf.Counters;
        }

        [Test]
        public void PlaybackClockMapsDspTimeToStreamTime()
        {
            Assert.AreEqual(0.2 + 1.0 / 30, PlaybackClock.DelaySeconds(120, 30, 80), 1e-12);
            Assert.AreEqual(0.08 + 1.0 / 60, PlaybackClock.DelaySeconds(-5, 60, 80), 1e-12);
            var c = new PlaybackClock();
            c.Start(50.0, 0.25);
            Assert.AreEqual(50.25, c.StartDspTime, 1e-12);
            Assert.AreEqual(-0.25, c.StreamTime(50.0), 1e-12);
            Assert.AreEqual(1.0, c.StreamTime(51.25), 1e-12);
        }

        [Test]
        public void SmoothingIsFrameRateIndependentAndZeroTauPassesThrough()
        {
            var target = new FacePose();
            target.Weights[0] = 1f;
            target.Rotations[0] = Quat.AxisAngle(new Vec3(0, 1, 0), 0.5);
            FacePose at60 = Run(target, 60, 0.1f), at30 = Run(target, 30, 0.1f);
            float expected = 1f - (float)Math.Exp(-0.5 / 0.1);  // half a second with tau = 0.1 s
            Assert.AreEqual(expected, at60.Weights[0], 1e-4f);
            Assert.AreEqual(expected, at30.Weights[0], 1e-4f);
            Assert.AreEqual(0.0, Quat.Angle(at60.Rotations[0], at30.Rotations[0]), 1e-3);
            Assert.AreEqual(1f, Run(target, 60, 0f).Weights[0], 1e-6f);
        }

        static FacePose Run(FacePose target, int hz, float tau)
        {
            var s = new PoseSmoother(tau, tau);
            var rest = new FacePose();
            var output = new FacePose();
            s.Step(rest, 0f, output);
            for (int i = 0; i < hz / 2; i++) s.Step(target, 1f / hz, output);
            return output;
        }

        [Test]
        public void StreamLayoutReordersAHeaderInAnotherOrderAndRejectsWrongLengths()
        {
            var names = new List<string>(ArkitNames.Blendshapes);
            names.Reverse();
            var bones = new[] { "RightEye", "Head" };
            var layout = new StreamLayout(names, bones);
            var weights = new float[52];
            weights[0] = 0.5f;  // = tongueOut in this reversed header
            var rots = new float[] { 0, 0, 0, 1, 0, 1, 0, 0 };
            var f = new FaceFrame();
            layout.Fill(f, 7, 0.25, weights, rots, false, Vec3.Zero);
            Assert.AreEqual(0.5f, f.Weights[ArkitNames.IndexOf("tongueOut")]);
            Assert.AreEqual(0f, f.Weights[0]);
            Assert.AreEqual(1f, f.Rotations[ArkitNames.Head].Y, 1e-6f);
            Assert.AreEqual(1f, f.Rotations[ArkitNames.RightEye].W, 1e-6f);
            var ex = Assert.Throws<ArgumentException>(() => layout.Fill(f, 8, 0.3, new float[51], rots, false, Vec3.Zero));
            StringAssert.Contains("51 weights", ex.Message);
            CollectionAssert.AreEqual(new[] { "smile" }, new StreamLayout(new[] { "smile" }, new string[0]).UnknownNames);
        }
    }
}

namespace AvatarBridge.Core.Tests
{
    /// <summary>DSP clock smoothing between audio-buffer steps.</summary>
    [TestFixture]
    public class DspTimeSmootherTests
    {
        [Test]
        public void SmoothsBufferStepsStaysMonotonicAndStopsWhenAudioStalls()
        {
            var s = new DspTimeSmoother();
            const double buffer = 1024.0 / 48000;  // 21.3 ms steps
            double prev = double.NegativeInfinity, worst = 0;
            for (int frame = 0; frame < 600; frame++)  // 10 s at 60 Hz, audio clock 0.1 % fast
            {
                double real = frame / 60.0;
                double dsp = Math.Floor(real * 1.001 / buffer) * buffer;
                double t = s.Update(dsp, real);
                Assert.GreaterOrEqual(t, prev);
                worst = Math.Max(worst, Math.Abs(t - real * 1.001));
                prev = t;
            }
            Assert.Less(worst, buffer + 1e-9, "stays within one audio buffer of the true audio clock");
            double stuck = Math.Floor(10.0 * 1.001 / buffer) * buffer;  // the audio clock stops here
            s.Update(stuck, 10.0);
            Assert.AreEqual(stuck + 0.05, s.Update(stuck, 10.05), 1e-9, "extrapolates a little");
            Assert.AreEqual(stuck + 0.1, s.Update(stuck, 30.0), 1e-9, "then waits for the audio");
        }
    }
}

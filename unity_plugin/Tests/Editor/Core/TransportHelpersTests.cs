using System;
using NUnit.Framework;

namespace AvatarBridge.Core.Tests
{
    /// <summary>Reconnect backoff and the PCM16 packing the client sends.</summary>
    [TestFixture]
    public class TransportHelpersTests
    {
        [Test]
        public void BackoffDoublesUpToTheCapWithBoundedJitterAndResets()
        {
            var b = new RetryBackoff(0.5, 8.0, 2.0, 0.2, 42);
            double[] nominal = { 0.5, 1, 2, 4, 8, 8, 8 };
            foreach (double n in nominal)
            {
                double d = b.NextDelay();
                Assert.That(d, Is.InRange(n * 0.8, n), "nominal " + n);
            }
            Assert.AreEqual(7, b.Attempts);
            b.Reset();
            Assert.That(b.NextDelay(), Is.InRange(0.4, 0.5));
            Assert.Throws<ArgumentException>(() => new RetryBackoff(0, 1, 2, 0, 1));
        }

        [Test]
        public void Pcm16IsLittleEndianClampedAndDownmixesMoreThanTwoChannels()
        {
            byte[] mono = AudioPacker.ToPcm16(new[] { 0f, 1f, -1f, 0.5f, 2f, float.NaN }, 1, 0, 6);
            short[] v = new short[6];
            Buffer.BlockCopy(mono, 0, v, 0, mono.Length);  // the test machine is little-endian like the wire
            CollectionAssert.AreEqual(new short[] { 0, 32767, -32767, 16384, 32767, 0 }, v);

            byte[] stereo = AudioPacker.ToPcm16(new[] { 0.1f, 0.2f, 0.3f, 0.4f }, 2, 1, 1);
            Assert.AreEqual(4, stereo.Length);
            Assert.AreEqual((short)Math.Round(0.3f * 32767f), BitConverter.ToInt16(stereo, 0));

            Assert.AreEqual(1, AudioPacker.WireChannels(6));
            byte[] surround = AudioPacker.ToPcm16(new[] { 0.6f, 0.6f, 0f, 0f, 0f, 0f }, 6, 0, 1);
            Assert.AreEqual(2, surround.Length);
            Assert.AreEqual((short)Math.Round(0.2f * 32767f), BitConverter.ToInt16(surround, 0));
            Assert.Throws<ArgumentOutOfRangeException>(() => AudioPacker.ToPcm16(new float[4], 2, 1, 2));
        }
    }
}

namespace AvatarBridge.Core.Tests
{
    /// <summary>When clip audio is sent: ahead of playback, in messages of at least the chunk length.</summary>
    [TestFixture]
    public class ClipSendingTests
    {
        [Test]
        public void ClipAudioLeavesInWholeChunksAheadOfPlayback()
        {
            const int rate = 16000, total = 16000 * 2 + 500;  // 2.03 s
            int sent = 0, messages = 0;
            var sizes = new System.Collections.Generic.List<int>();
            for (double t = 0; sent < total; t += 1.0 / 60)  // one Update per 60 fps frame
            {
                int upTo = AudioPacker.ClipFramesDue(t, 0.1, 0.1, rate, sent, total);
                if (upTo == sent) continue;
                // never late: everything up to playback + the lead has gone
                Assert.GreaterOrEqual(upTo, (int)Math.Min(total, (t + 0.1) * rate), "at t=" + t);
                sizes.Add(upTo - sent);
                sent = upTo;
                messages++;
            }
            Assert.AreEqual(total, sent);
            for (int i = 0; i < sizes.Count - 1; i++) Assert.GreaterOrEqual(sizes[i], 1600, "message " + i);
            Assert.LessOrEqual(messages, 22, "about one message per 100 ms, not one per frame");
        }

        [Test]
        public void ZeroChunkSendsEveryFrameAndNothingIsDueBeforeTheLead()
        {
            Assert.AreEqual(1600, AudioPacker.ClipFramesDue(0.0, 0.1, 0.0, 16000, 0, 32000));
            Assert.AreEqual(1866, AudioPacker.ClipFramesDue(1.0 / 60, 0.1, 0.0, 16000, 1600, 32000));
            Assert.AreEqual(3200, AudioPacker.ClipFramesDue(0.0, 0.1, 0.1, 16000, 0, 32000));
            Assert.AreEqual(3200, AudioPacker.ClipFramesDue(0.05, 0.1, 0.1, 16000, 3200, 32000), "not yet due");
            Assert.AreEqual(32000, AudioPacker.ClipFramesDue(5.0, 0.1, 0.1, 16000, 31900, 32000), "the short end");
        }

        [Test]
        public void NegativeNaNOrHugeChunksStillSendTheWholeClip()
        {
            Assert.AreEqual(1600, AudioPacker.ClipFramesDue(0.0, 0.1, -1.0, 16000, 0, 32000), "negative: as it comes");
            Assert.AreEqual(1600, AudioPacker.ClipFramesDue(0.0, 0.1, double.NaN, 16000, 0, 32000), "NaN: as it comes");
            Assert.AreEqual(32000, AudioPacker.ClipFramesDue(0.0, 0.1, 1e9, 16000, 0, 32000), "huge: the whole clip");
        }
    }

    /// <summary>The audio hand-over from Unity's main thread to the sending task.</summary>
    [TestFixture]
    public class AudioFeedTests
    {
        [Test]
        public void ChunksComeOutInOrderAcrossThreadsThenTheEnd()
        {
            var feed = new AudioFeed();
            var received = new System.Collections.Generic.List<byte>();
            var reader = System.Threading.Tasks.Task.Run(async () =>
            {
                while (true)
                {
                    byte[] c = await feed.ReadAsync(System.Threading.CancellationToken.None);
                    if (c == null) return;
                    received.AddRange(c);
                }
            });
            for (int i = 0; i < 1000; i++) feed.Write(new[] { (byte)(i & 0xFF), (byte)(i >> 8) });
            feed.Write(new byte[0]);  // ignored
            feed.End();
            feed.Write(new byte[] { 9 });  // after the end: ignored
            Assert.IsTrue(reader.Wait(5000), "the reader saw the end");
            Assert.AreEqual(2000, received.Count);
            for (int i = 0; i < 1000; i++) Assert.AreEqual(i, received[2 * i] | (received[2 * i + 1] << 8));
            Assert.AreEqual(2000, feed.BytesQueued);
            Assert.IsNull(feed.ReadAsync(System.Threading.CancellationToken.None).Result, "the end is sticky");
        }

        [Test]
        public void ReadIsCancellable()
        {
            var feed = new AudioFeed();
            var cts = new System.Threading.CancellationTokenSource();
            var read = feed.ReadAsync(cts.Token);
            cts.Cancel();
            var ex = Assert.Throws<System.AggregateException>(() => read.Wait(5000));
            Assert.IsInstanceOf<System.OperationCanceledException>(ex.InnerException);
        }
    }
}

using System;

namespace AvatarBridge.Core
{
    /// <summary>
    /// Float samples (Unity's AudioClip / Microphone data, interleaved, −1..1) to the wire's PCM16 little-endian.
    /// One or two channels pass through (the server downmixes stereo); more are averaged to mono here, since
    /// the contract takes at most two.
    /// </summary>
    public static class AudioPacker
    {
        /// <summary>
        /// How far into a clip the audio should have been sent after <paramref name="elapsedSeconds"/> of
        /// playback: <paramref name="leadSeconds"/> ahead of real time, in messages of at least
        /// <paramref name="chunkSeconds"/> (the clip's end may be shorter; a negative or NaN chunk sends as it comes). Returns <paramref name="sentFrames"/>
        /// while the next message is not due. Each message leaves when its first sample is
        /// <paramref name="leadSeconds"/> ahead of playback, so larger messages delay nothing; they let one server
        /// carry more streams (measured: 200 per 2 cores with 100 ms messages, 100-150 with 40 ms ones).
        /// </summary>
        public static int ClipFramesDue(double elapsedSeconds, double leadSeconds, double chunkSeconds, int rate,
                                        int sentFrames, int totalFrames)
        {
            // Negative or NaN: no gathering; more than the clip: the rest of it at once.
            double chunk = chunkSeconds > 0.0 ? Math.Min(chunkSeconds, (double)totalFrames / Math.Max(1, rate)) : 0.0;
            double due = (elapsedSeconds + leadSeconds + chunk) * rate;
            int upTo = (int)Math.Min(totalFrames, Math.Max(0.0, due));
            int minFrames = Math.Max(1, (int)(chunk * rate));
            if (upTo <= sentFrames || (upTo - sentFrames < minFrames && upTo < totalFrames)) return sentFrames;
            return upTo;
        }

        /// <summary>The channel count sent for a source with <paramref name="channels"/> channels (1 or 2).</summary>
        public static int WireChannels(int channels)
        {
            if (channels < 1) throw new ArgumentOutOfRangeException("channels", channels, "need at least one channel");
            return channels <= 2 ? channels : 1;
        }

        /// <summary>
        /// Encodes <paramref name="frameCount"/> sample frames of <paramref name="channels"/> interleaved channels
        /// starting at frame <paramref name="firstFrame"/> of <paramref name="samples"/>. Values are clamped to −1..1,
        /// NaN becomes 0.
        /// </summary>
        public static byte[] ToPcm16(float[] samples, int channels, int firstFrame, int frameCount)
        {
            if (samples == null) throw new ArgumentNullException("samples");
            int wire = WireChannels(channels);
            if (firstFrame < 0 || frameCount < 0 || (long)(firstFrame + frameCount) * channels > samples.Length)
                throw new ArgumentOutOfRangeException("frameCount", "the range runs past the samples");
            var bytes = new byte[frameCount * wire * 2];
            int o = 0;
            for (int f = 0; f < frameCount; f++)
            {
                int s = (firstFrame + f) * channels;
                if (wire == channels)
                {
                    for (int c = 0; c < channels; c++) o = Put(bytes, o, samples[s + c]);
                }
                else
                {
                    float sum = 0f;
                    for (int c = 0; c < channels; c++) sum += samples[s + c];
                    o = Put(bytes, o, sum / channels);
                }
            }
            return bytes;
        }

        static int Put(byte[] b, int o, float v)
        {
            if (!(v > -1f)) v = v <= -1f ? -1f : 0f;  // NaN -> 0
            if (v > 1f) v = 1f;
            int q = (int)Math.Round(v * 32767f);
            b[o] = (byte)(q & 0xFF);
            b[o + 1] = (byte)((q >> 8) & 0xFF);
            return o + 2;
        }
    }
}

using System;
using System.Collections.Generic;

namespace AvatarBridge.Core
{
    /// <summary>
    /// One <c>Speak</c> utterance (text to speech + frames, docs/speak.md) on one clock: the server's PCM16 audio
    /// chunks and its frames, both timed on the audio's sample clock. The audio thread pulls samples with
    /// <see cref="ReadAudio"/>; the position it has played is the clock the face is shown at (<see cref="Sample"/>).
    /// A barge-in (<see cref="Stop"/>) drops the audio after the stop, and the frames the server then sends from
    /// <c>k0 = ceil(at_time * fps)</c> (easing to rest) supersede every frame held from <c>k0</c> on.
    /// Thread-safe: the network thread adds, the audio thread reads samples, the main thread samples the face.
    /// Transport-free: the Transport assembly (or a test) feeds it the decoded messages.
    /// </summary>
    public sealed class SpeechTimeline
    {
        readonly object gate = new object();
        readonly List<short> audio = new List<short>();
        readonly List<FaceFrame> frames = new List<FaceFrame>();
        long played;
        long wireSamples;
        long stopSample = -1;
        bool complete;
        long underrunSamples;
        int superseded;

        /// <summary>A timeline for audio at <paramref name="sampleRate"/> Hz and frames at <paramref name="fps"/>.</summary>
        public SpeechTimeline(int sampleRate, int fps)
        {
            if (sampleRate <= 0) throw new ArgumentOutOfRangeException("sampleRate", sampleRate, "the SpeakHeader's sample_rate must be positive");
            if (fps <= 0) throw new ArgumentOutOfRangeException("fps", fps, "fps must be positive");
            SampleRate = sampleRate;
            Fps = fps;
        }

        /// <summary>The SpeakHeader's sample rate: of the audio and of every time code.</summary>
        public int SampleRate { get; private set; }

        /// <summary>Frames per second.</summary>
        public int Fps { get; private set; }

        /// <summary>Samples received (the end of the audio on the clock; after a stop, at most the stop).</summary>
        public long ReceivedSamples { get { lock (gate) return audio.Count; } }

        /// <summary>Samples handed to the audio device so far.</summary>
        public long PlayedSamples { get { lock (gate) return played; } }

        /// <summary>Seconds of audio played: the clock the face follows.</summary>
        public double PlaybackTime { get { lock (gate) return (double)played / SampleRate; } }

        /// <summary>Silence inserted because audio had not arrived yet (before <see cref="Complete"/>), in samples.</summary>
        public long UnderrunSamples { get { lock (gate) return underrunSamples; } }

        /// <summary>Frames received and not superseded.</summary>
        public int FrameCount { get { lock (gate) return frames.Count; } }

        /// <summary>Frames dropped because a barge-in's eased frames superseded them.</summary>
        public int SupersededFrames { get { lock (gate) return superseded; } }

        /// <summary>Whether <see cref="Stop"/> ran.</summary>
        public bool Stopped { get { lock (gate) return stopSample >= 0; } }

        /// <summary>The status arrived and every sample has been played.</summary>
        public bool Finished { get { lock (gate) return complete && played >= audio.Count; } }

        /// <summary>
        /// A <c>SpeakAudio</c> chunk: mono little-endian PCM16 starting at <paramref name="sampleIndex"/>. Chunks come
        /// back to back; a gap or overlap throws (the stream is corrupt). After a stop, audio past it is dropped.
        /// </summary>
        public void AddAudio(long sampleIndex, byte[] pcm16, int offset, int count)
        {
            if (pcm16 == null) throw new ArgumentNullException("pcm16");
            if (offset < 0 || count < 0 || offset + count > pcm16.Length) throw new ArgumentOutOfRangeException("count");
            if ((count & 1) != 0) throw new ArgumentException("PCM16 audio must be an even number of bytes, got " + count, "count");
            lock (gate)
            {
                if (sampleIndex != wireSamples)
                    throw new InvalidOperationException(string.Format(
                        "audio chunk at sample {0}, but {1} samples were received: chunks must be back to back", sampleIndex, wireSamples));
                int n = count / 2;
                wireSamples += n;
                if (stopSample >= 0) n = (int)Math.Max(0, Math.Min(n, stopSample - audio.Count));  // sent before the stop landed
                for (int i = 0; i < n; i++)
                    audio.Add((short)(pcm16[offset + 2 * i] | (pcm16[offset + 2 * i + 1] << 8)));
            }
        }

        /// <summary>
        /// A received frame, in arrival order. A frame whose index is below <see cref="FrameCount"/> (a barge-in's
        /// eased frames) supersedes the frames held from its index on; any other index must be the next one.
        /// </summary>
        public void AddFrame(FaceFrame frame)
        {
            if (frame == null) throw new ArgumentNullException("frame");
            lock (gate)
            {
                if (frame.Index < frames.Count && frame.Index >= 0)
                {
                    int from = (int)frame.Index;
                    superseded += frames.Count - from;
                    frames.RemoveRange(from, frames.Count - from);
                }
                else if (frame.Index != frames.Count)
                {
                    throw new InvalidOperationException(string.Format(
                        "frame {0} where {1} was expected: frames come without gaps", frame.Index, frames.Count));
                }
                frames.Add(frame);
            }
        }

        /// <summary>The frame with this index (0 .. <see cref="FrameCount"/> - 1).</summary>
        public FaceFrame FrameAt(int index) { lock (gate) return frames[index]; }

        /// <summary>
        /// Barge-in at <paramref name="atTime"/> seconds (normally <see cref="PlaybackTime"/>; send the same value in
        /// <c>SpeakStop.at_time</c>): audio after it is dropped. Returns <c>k0 = ceil(atTime * fps)</c>, the first frame
        /// the server will replace with frames easing to rest.
        /// </summary>
        public long Stop(double atTime)
        {
            if (double.IsNaN(atTime) || atTime < 0) atTime = 0;
            lock (gate)
            {
                long s = (long)Math.Round(atTime * SampleRate);
                stopSample = stopSample >= 0 ? Math.Min(stopSample, s) : s;
                if (audio.Count > stopSample) audio.RemoveRange((int)stopSample, audio.Count - (int)stopSample);
                return (long)Math.Ceiling(atTime * Fps - 1e-9);
            }
        }

        /// <summary>The <c>SpeakStatus</c> arrived: no more audio will come (silence after the end is not an underrun).</summary>
        public void Complete() { lock (gate) complete = true; }

        /// <summary>
        /// Fills <paramref name="count"/> floats (-1..1, mono) from the audio and advances the clock by the samples
        /// written; missing audio is silence, and the clock waits for it (an underrun while the utterance is not
        /// complete), so audio and face never drift apart. Returns the number of real samples written.
        /// </summary>
        public int ReadAudio(float[] into, int offset, int count)
        {
            if (into == null) throw new ArgumentNullException("into");
            if (offset < 0 || count < 0 || offset + count > into.Length) throw new ArgumentOutOfRangeException("count");
            lock (gate)
            {
                int real = (int)Math.Max(0, Math.Min(count, audio.Count - played));
                for (int i = 0; i < real; i++) into[offset + i] = audio[(int)played + i] / 32768f;
                for (int i = real; i < count; i++) into[offset + i] = 0f;
                played += real;
                // Audio late from the network: silence, and the clock (so the face) waits for it.
                if (real < count && !complete) underrunSamples += count - real;
                return real;
            }
        }

        /// <summary>
        /// The face at <paramref name="time"/> seconds on the audio's clock (e.g. <see cref="PlaybackTime"/>):
        /// interpolated between the frames around it, the last frame after the end. False while no frame is held.
        /// </summary>
        public bool Sample(double time, FacePose into)
        {
            if (into == null) throw new ArgumentNullException("into");
            lock (gate)
            {
                if (frames.Count == 0) return false;
                int lo = 0, hi = frames.Count - 1;
                if (time <= frames[0].Time) { into.SetFrame(frames[0]); return true; }
                if (time >= frames[hi].Time) { into.SetFrame(frames[hi]); return true; }
                while (hi - lo > 1)
                {
                    int mid = (lo + hi) / 2;
                    if (frames[mid].Time <= time) lo = mid; else hi = mid;
                }
                double span = frames[hi].Time - frames[lo].Time;
                into.SetInterpolated(frames[lo], frames[hi], span > 0 ? (float)((time - frames[lo].Time) / span) : 0f);
                return true;
            }
        }
    }
}

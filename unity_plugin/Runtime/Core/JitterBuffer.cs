using System;
using System.Collections.Generic;

namespace AvatarBridge.Core
{
    /// <summary>What <see cref="JitterBuffer.Push"/> did with a frame.</summary>
    public enum PushResult
    {
        /// <summary>Stored, in order.</summary>
        Accepted,
        /// <summary>Stored, although a newer frame had already arrived (out of order but still in time).</summary>
        Reordered,
        /// <summary>Dropped: its time is already behind the playback position.</summary>
        DroppedLate,
        /// <summary>Dropped: a frame with this index is already stored.</summary>
        DroppedDuplicate,
    }

    /// <summary>What <see cref="JitterBuffer.Sample"/> produced.</summary>
    public enum SampleResult
    {
        /// <summary>No frame has arrived yet, or playback has not reached the first one: the pose is untouched.</summary>
        Waiting,
        /// <summary>The pose lies between two buffered frames (or exactly on one).</summary>
        Interpolated,
        /// <summary>Playback is past the newest frame: the newest pose is held (an underrun unless the stream ended).</summary>
        Held,
    }

    /// <summary>Counters of a <see cref="JitterBuffer"/>; shown in the inspector and logged at stream end.</summary>
    public sealed class FrameCounters
    {
        /// <summary>Frames pushed.</summary>
        public long Received;
        /// <summary>Frames dropped because playback had already passed their time.</summary>
        public long Late;
        /// <summary>Frames dropped because their index was already buffered.</summary>
        public long Duplicates;
        /// <summary>Frames that arrived after a newer one but in time to be used.</summary>
        public long Reordered;
        /// <summary>Oldest frames dropped because the buffer was full.</summary>
        public long Overflow;
        /// <summary>Times playback ran past the newest frame before the stream ended (each starvation counted once).</summary>
        public long Underruns;
        /// <summary>Missing frame indices bridged by interpolating between their neighbours.</summary>
        public long Concealed;

        /// <summary>A copy of the current values.</summary>
        public FrameCounters Snapshot()
        {
            return (FrameCounters)MemberwiseClone();
        }

        /// <inheritdoc/>
        public override string ToString()
        {
            return string.Format("received={0} late={1} duplicates={2} reordered={3} overflow={4} underruns={5} concealed={6}",
                                 Received, Late, Duplicates, Reordered, Overflow, Underruns, Concealed);
        }
    }

    /// <summary>
    /// Frames ordered by index and sampled at a playback time (seconds on the audio's clock): the pose between the
    /// two frames around that time, linearly interpolated (slerp for rotations). Frames behind the playback position
    /// are dropped and counted; out-of-order frames still ahead of it are slotted in. Thread-safe: the transport
    /// pushes from its thread, the actor samples on Unity's main thread.
    /// </summary>
    public sealed class JitterBuffer
    {
        readonly object gate = new object();
        readonly List<FaceFrame> frames = new List<FaceFrame>();
        readonly FrameCounters counters = new FrameCounters();
        readonly int capacity;
        double presented = double.NegativeInfinity;
        long newestIndex = -1;
        long concealedUpTo = -1;
        bool starving;
        bool ended;

        /// <summary>Creates a buffer holding at most <paramref name="capacity"/> frames (older ones are dropped and counted).</summary>
        public JitterBuffer(int capacity)
        {
            if (capacity < 2) throw new ArgumentOutOfRangeException("capacity", capacity, "need room for at least 2 frames");
            this.capacity = capacity;
        }

        /// <summary>Frames currently buffered.</summary>
        public int Count { get { lock (gate) return frames.Count; } }

        /// <summary>Time of the newest buffered frame, or NaN when empty.</summary>
        public double NewestTime { get { lock (gate) return frames.Count > 0 ? frames[frames.Count - 1].Time : double.NaN; } }

        /// <summary>Seconds of animation buffered ahead of <paramref name="playbackTime"/> (negative while starving).</summary>
        public double SecondsAhead(double playbackTime)
        {
            lock (gate) return frames.Count > 0 ? frames[frames.Count - 1].Time - playbackTime : double.NegativeInfinity;
        }

        /// <summary>A snapshot of the counters.</summary>
        public FrameCounters Counters { get { lock (gate) return counters.Snapshot(); } }

        /// <summary>Marks the end of the stream: running past the last frame is then no longer an underrun.</summary>
        public void MarkEnded() { lock (gate) ended = true; }

        /// <summary>Empties the buffer and zeroes the counters, for a new stream.</summary>
        public void Reset()
        {
            lock (gate)
            {
                frames.Clear();
                presented = double.NegativeInfinity;
                newestIndex = -1;
                concealedUpTo = -1;
                starving = false;
                ended = false;
                counters.Received = counters.Late = counters.Duplicates = counters.Reordered = 0;
                counters.Overflow = counters.Underruns = counters.Concealed = 0;
            }
        }

        /// <summary>Adds a frame. The buffer keeps the instance: pass a new one each time.</summary>
        public PushResult Push(FaceFrame frame)
        {
            if (frame == null) throw new ArgumentNullException("frame");
            lock (gate)
            {
                counters.Received++;
                if (frame.Time < presented)
                {
                    counters.Late++;
                    return PushResult.DroppedLate;
                }
                int pos = Find(frame.Index);
                if (pos >= 0)
                {
                    counters.Duplicates++;
                    return PushResult.DroppedDuplicate;
                }
                pos = ~pos;
                frames.Insert(pos, frame);
                PushResult result = PushResult.Accepted;
                if (frame.Index < newestIndex)
                {
                    counters.Reordered++;
                    result = PushResult.Reordered;
                }
                else
                {
                    newestIndex = frame.Index;
                }
                while (frames.Count > capacity)
                {
                    frames.RemoveAt(0);
                    counters.Overflow++;
                }
                return result;
            }
        }

        /// <summary>
        /// Writes the pose at <paramref name="playbackTime"/> into <paramref name="into"/> and forgets frames that can
        /// no longer be needed. Playback time must not go backwards (a smaller time is treated as the last one).
        /// </summary>
        public SampleResult Sample(double playbackTime, FacePose into)
        {
            if (into == null) throw new ArgumentNullException("into");
            lock (gate)
            {
                if (playbackTime < presented) playbackTime = presented;
                if (frames.Count == 0 || playbackTime < frames[0].Time) return SampleResult.Waiting;
                presented = playbackTime;
                int i = LastAtOrBefore(playbackTime);
                if (i > 0)
                {
                    frames.RemoveRange(0, i);  // keep the left neighbour for the next interpolation
                    i = 0;
                }
                FaceFrame a = frames[i];
                if (i == frames.Count - 1)
                {
                    into.SetFrame(a);
                    into.Time = playbackTime;
                    if (playbackTime > a.Time && !ended && !starving)
                    {
                        starving = true;
                        counters.Underruns++;
                    }
                    return SampleResult.Held;
                }
                starving = false;
                FaceFrame b = frames[i + 1];
                if (b.Index - a.Index > 1 && b.Index > concealedUpTo)
                {
                    counters.Concealed += b.Index - a.Index - 1;
                    concealedUpTo = b.Index;
                }
                double span = b.Time - a.Time;
                float t = span > 0 ? (float)((playbackTime - a.Time) / span) : 1f;
                into.SetInterpolated(a, b, t);
                into.Time = playbackTime;
                return SampleResult.Interpolated;
            }
        }

        int Find(long index)
        {
            int lo = 0, hi = frames.Count - 1;
            while (lo <= hi)
            {
                int mid = (lo + hi) >> 1;
                long v = frames[mid].Index;
                if (v == index) return mid;
                if (v < index) lo = mid + 1; else hi = mid - 1;
            }
            return ~lo;
        }

        int LastAtOrBefore(double time)
        {
            int lo = 0, hi = frames.Count - 1, best = 0;
            while (lo <= hi)
            {
                int mid = (lo + hi) >> 1;
                if (frames[mid].Time <= time) { best = mid; lo = mid + 1; } else hi = mid - 1;
            }
            return best;
        }
    }
}

using System;

namespace AvatarBridge.Core
{
    /// <summary>
    /// Unity's AudioSettings.dspTime advances in whole audio buffers (e.g. 1024 samples = 21 ms at 48 kHz), so
    /// sampling animation at raw dspTime stutters. This extrapolates between buffer steps with a smooth real-time
    /// clock (Time.unscaledTimeAsDouble), re-anchors on each step, never runs backwards and never gets more than
    /// <see cref="MaxExtrapolation"/> ahead of the last DSP value (audio stalled: the face waits too).
    /// </summary>
    public sealed class DspTimeSmoother
    {
        double anchorDsp = double.NaN, anchorReal, last = double.NegativeInfinity;

        /// <summary>Longest extrapolation past the last DSP step, seconds.</summary>
        public double MaxExtrapolation = 0.1;

        /// <summary>Forgets the anchor (after a pause or a device change).</summary>
        public void Reset()
        {
            anchorDsp = double.NaN;
            last = double.NegativeInfinity;
        }

        /// <summary>The smoothed DSP time for this frame.</summary>
        /// <param name="dspTime">AudioSettings.dspTime now.</param>
        /// <param name="realTime">A smooth real-time clock in seconds, read at the same moment.</param>
        public double Update(double dspTime, double realTime)
        {
            if (double.IsNaN(anchorDsp) || dspTime != anchorDsp)
            {
                anchorDsp = dspTime;
                anchorReal = realTime;
            }
            double t = anchorDsp + Math.Min(Math.Max(realTime - anchorReal, 0.0), MaxExtrapolation);
            if (t < last) t = last;  // a re-anchor slightly behind the extrapolation holds rather than rewinds
            last = t;
            return t;
        }
    }
}

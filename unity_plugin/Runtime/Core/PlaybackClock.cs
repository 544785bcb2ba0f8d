namespace AvatarBridge.Core
{
    /// <summary>
    /// Maps the audio DSP clock (Unity's AudioSettings.dspTime) to stream time (seconds on the audio's own clock,
    /// the frames' <c>time</c>). Frames for audio sent at wall time t arrive no earlier than t + lookahead, so the
    /// face (and, for a clip, its sound) is shown <see cref="DelaySeconds"/> after the audio went out.
    /// </summary>
    public sealed class PlaybackClock
    {
        /// <summary>DSP time at which stream time 0 is shown (for a clip: the AudioSource.PlayScheduled time).</summary>
        public double StartDspTime { get; private set; }

        /// <summary>Whether <see cref="Start"/> was called since the last <see cref="Stop"/>.</summary>
        public bool IsRunning { get; private set; }

        /// <summary>
        /// The playback delay for a stream: the header's look-ahead, one frame period (interpolating at time t needs
        /// the frame after t), and the jitter budget.
        /// </summary>
        /// <param name="lookaheadMs"><c>ExpressionHeader.lookahead_ms</c>.</param>
        /// <param name="fps"><c>ExpressionHeader.fps</c>.</param>
        /// <param name="jitterBudgetMs">Extra buffering for network and scheduling jitter (the inspector's setting).</param>
        public static double DelaySeconds(double lookaheadMs, int fps, double jitterBudgetMs)
        {
            double ms = (lookaheadMs > 0 ? lookaheadMs : 0) + (jitterBudgetMs > 0 ? jitterBudgetMs : 0);
            return ms / 1000.0 + (fps > 0 ? 1.0 / fps : 0.0);
        }

        /// <summary>
        /// Starts the clock. <paramref name="audioZeroDspTime"/> is the DSP time at which the stream's first sample
        /// was sent (clip) or captured (microphone).
        /// </summary>
        public void Start(double audioZeroDspTime, double delaySeconds)
        {
            StartDspTime = audioZeroDspTime + delaySeconds;
            IsRunning = true;
        }

        /// <summary>Stops the clock.</summary>
        public void Stop() { IsRunning = false; }

        /// <summary>Stream time to show at <paramref name="dspTime"/> (negative before the start).</summary>
        public double StreamTime(double dspTime) { return dspTime - StartDspTime; }
    }
}

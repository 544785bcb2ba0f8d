using System;
using System.Threading;
using System.Threading.Tasks;
using AvatarBridge.Core;
using AvatarBridge.Face;
using AvatarBridge.Transport;
using Grpc.Core;
using UnityEngine;

namespace AvatarBridge.Device
{
    /// <summary>
    /// The client device: connects to an avatar-bridge server (retrying with backoff while it is unreachable),
    /// streams an AudioClip or a microphone, receives frames into a jitter buffer, and every LateUpdate hands the
    /// pose at the audio's playback time (AudioSettings.dspTime, delayed by the stream's look-ahead plus the jitter
    /// budget) to its <see cref="FaceActor"/>. Disabling it, or leaving play mode, ends the call and disposes the channel.
    /// </summary>
    [DisallowMultipleComponent]
    [DefaultExecutionOrder(-50)]
    [AddComponentMenu("Avatar Bridge/Bridge Client Device")]
    public sealed class BridgeClientDevice : MonoBehaviour
    {
        const double SendLeadSeconds = 0.1;  // clip audio goes out this far ahead of real time

        [Tooltip("http://host:port of the avatar-bridge server (cleartext HTTP/2), or https:// behind TLS.")]
        [SerializeField] string serverAddress = "http://127.0.0.1:50051";
        [Tooltip("TLS: the CA certificate file (PEM) that signed the server's certificate; empty = plaintext. " +
                 "With it, a bare host:port means https:// (docs/security.md).")]
        [SerializeField] string tlsCaFile = "";
        [Tooltip("File whose first line is the bearer token the server wants (serve --auth-token-file); empty = none. " +
                 "Keep it out of the project's Assets so it is not built into the player.")]
        [SerializeField] string authTokenFile = "";
        [Tooltip("The actor that shows the frames.")]
        [SerializeField] FaceActor actor;
        [SerializeField] AudioInput input = AudioInput.Clip;
        [Tooltip("Plays the clip in sync with the face (Clip input).")]
        [SerializeField] AudioSource audioSource;
        [Tooltip("Speech to animate. Import Settings: Load Type 'Decompress On Load' (the samples are read once).")]
        [SerializeField] AudioClip clip;
        [SerializeField] bool playOnStart = true;
        [Tooltip("The microphone streamed when Input is Microphone; empty = the Microphone Input on this GameObject " +
                 "(added when missing).")]
        [SerializeField] MicrophoneInput microphone;
        [SerializeField] FrameRate frameRate = FrameRate.Fps60;
        [Tooltip("Extra delay over the stream's look-ahead that absorbs network and scheduling jitter, ms. " +
                 "Raise it if the inspector counts underruns or late frames.")]
        [SerializeField, Range(0f, 500f)] float jitterBudgetMs = 60f;
        [Tooltip("Engine name; empty = the server's default.")]
        [SerializeField] string engine = "";
        [Tooltip("The contract's emotion preset.")]
        [SerializeField] global::AvatarBridge.V1.Emotion emotion = global::AvatarBridge.V1.Emotion.Neutral;
        [SerializeField, Range(0f, 1f)] float emotionStrength = 0.5f;
        [SerializeField, Range(0f, 2f)] float intensity = 1f;
        [SerializeField, Range(0f, 2f)] float headMotion = 1f;
        [SerializeField] ulong seed;
        [SerializeField, Min(0.5f)] float connectTimeoutSeconds = 3f;
        [Tooltip("Give up after this many failed connection attempts (0 = keep trying).")]
        [SerializeField, Min(0)] int maxConnectAttempts;
        [Tooltip("Clip input: the audio goes out in messages of this many ms, each early by as much, so nothing " +
                 "is delayed; larger messages let one server carry more streams (200 per 2 cores at 100 ms, " +
                 "100-150 at 40 ms; 0 = one message per frame).")]
        [SerializeField, Range(0f, 500f)] float clipChunkMs = 100f;

        readonly JitterBuffer buffer = new JitterBuffer(1024);
        readonly PlaybackClock clock = new PlaybackClock();
        readonly DspTimeSmoother dsp = new DspTimeSmoother();
        readonly FacePose pose = new FacePose();
        CancellationTokenSource cts;
        BridgeChannel channel;
        ExpressionSession session;
        AudioFeed feed;
        StreamInfo info;
        bool scheduledAudio;
        bool loggedConnect;

        // Clip input
        float[] clipSamples;
        int clipChannels, clipRate, clipFrames, sentFrames;
        double sendZeroDsp;

        // Microphone input
        bool micStarted;

        /// <summary>Life-cycle state.</summary>
        public BridgeStatus Status { get; private set; }
        /// <summary>What is going on, or the last error, in words.</summary>
        public string StatusMessage { get; private set; }
        /// <summary>Jitter buffer counters of the current stream (late, reordered, underruns, ...).</summary>
        public FrameCounters Counters { get { return buffer.Counters; } }
        /// <summary>Frames received in the current stream.</summary>
        public long FramesReceived { get { return session != null ? session.FramesReceived : 0; } }
        /// <summary>The stream's header (null before it arrives).</summary>
        public StreamInfo Stream { get { return info; } }
        /// <summary>Playback delay in use, seconds (look-ahead + one frame + jitter budget).</summary>
        public double DelaySeconds { get; private set; }
        /// <summary>Animation buffered ahead of playback, seconds (negative while starving).</summary>
        public double SecondsBuffered { get { return clock.IsRunning ? buffer.SecondsAhead(clock.StreamTime(AudioSettings.dspTime)) : 0; } }
        /// <summary>The server address.</summary>
        public string ServerAddress { get { return serverAddress; } set { serverAddress = value; } }
        /// <summary>CA certificate file (PEM) of the server's TLS certificate; empty = plaintext (applies from the next connection).</summary>
        public string TlsCaFile { get { return tlsCaFile; } set { tlsCaFile = value; } }
        /// <summary>File holding the bearer token sent with every call; empty = none (applies from the next connection).</summary>
        public string AuthTokenFile { get { return authTokenFile; } set { authTokenFile = value; } }
        /// <summary>The AudioSource that plays a clip in sync with the face.</summary>
        public AudioSource AudioSource { get { return audioSource; } set { audioSource = value; } }
        /// <summary>The actor frames go to.</summary>
        public FaceActor Actor { get { return actor; } set { actor = value; } }
        /// <summary>The jitter budget, ms (applies from the next stream).</summary>
        public float JitterBudgetMs { get { return jitterBudgetMs; } set { jitterBudgetMs = Mathf.Clamp(value, 0f, 500f); } }

        /// <summary>Streams <paramref name="speech"/> (played through the AudioSource in sync with the face).</summary>
        public void Play(AudioClip speech)
        {
            if (speech == null) throw new ArgumentNullException("speech");
            StopStream(BridgeStatus.Idle, "");
            clip = speech;
            input = AudioInput.Clip;
            Begin();
        }

        /// <summary>Streams a microphone live; <paramref name="device"/> null or empty = the default one.</summary>
        public void StartMicrophone(string device)
        {
            StopStream(BridgeStatus.Idle, "");
            Mic().DeviceName = device ?? "";
            input = AudioInput.Microphone;
            Begin();
        }

        /// <summary>Ends the stream and releases the channel.</summary>
        public void Stop() { StopStream(BridgeStatus.Idle, "stopped"); }

        void Start()
        {
            if (playOnStart && (input == AudioInput.Microphone || clip != null)) Begin();
        }

        void OnDisable() { StopStream(BridgeStatus.Idle, "disabled"); }

        void OnDestroy() { StopStream(BridgeStatus.Idle, "destroyed"); }

        void Begin()
        {
            if (actor == null) actor = GetComponentInChildren<FaceActor>();
            if (actor == null) Debug.LogWarning("[Avatar Bridge] " + name + ": no Face Actor assigned; frames are received but not shown", this);
            cts = new CancellationTokenSource();
            RunAsync(cts.Token);
        }

        // async void on purpose: Unity's main-thread context resumes it; every exception is handled inside.
        async void RunAsync(CancellationToken ct)
        {
            var backoff = RetryBackoff.Default();
            try
            {
                while (!ct.IsCancellationRequested)
                {
                    if (!await ConnectAsync(backoff, ct)) return;
                    bool again = await StreamOnceAsync(ct);
                    if (!again) return;
                    double d = backoff.NextDelay();  // microphone: the stream broke; reconnect
                    SetStatus(BridgeStatus.Retrying, StatusMessage + string.Format("; reconnecting in {0:F1} s", d));
                    await Task.Delay(TimeSpan.FromSeconds(d), ct);
                }
            }
            catch (OperationCanceledException)
            {
                // Stop() or play-mode exit
            }
            catch (Exception e)
            {
                if (!ct.IsCancellationRequested) StopStream(BridgeStatus.Failed, e.GetType().Name + ": " + e.Message);
            }
        }

        async Task<bool> ConnectAsync(RetryBackoff backoff, CancellationToken ct)
        {
            while (true)
            {
                SetStatus(BridgeStatus.Connecting, "connecting to " + serverAddress);
                try
                {
                    if (channel == null)
                    {
                        ConnectionSecurity security;
                        try
                        {
                            security = ConnectionSecurity.FromFiles(tlsCaFile, authTokenFile);
                        }
                        catch (ArgumentException e)  // an unreadable CA or token file: retrying cannot help
                        {
                            StopStream(BridgeStatus.Failed, e.Message);
                            return false;
                        }
                        channel = new BridgeChannel(serverAddress, security);
                    }
                    var caps = await channel.GetCapabilitiesAsync(TimeSpan.FromSeconds(connectTimeoutSeconds), ct);
                    if (caps.ApiVersion != "avatarbridge.v1")
                    {
                        StopStream(BridgeStatus.Failed, "server " + serverAddress + " speaks '" + caps.ApiVersion +
                                                        "', this package avatarbridge.v1; use a matching server or package");
                        return false;
                    }
                    if (backoff.Attempts > 0 || !loggedConnect)
                        Debug.Log(string.Format("[Avatar Bridge] {0}: connected to {1} (server {2}, {3}); contract code from proto sha256 {4}",
                                                name, serverAddress, caps.ServerVersion, caps.ApiVersion,
                                                global::AvatarBridge.V1.ContractStamp.ProtoSha256.Substring(0, 12)), this);
                    loggedConnect = true;
                    string problem = CheckLimits(caps);
                    if (problem != null)
                    {
                        StopStream(BridgeStatus.Failed, problem);
                        return false;
                    }
                    backoff.Reset();
                    return true;
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.Unauthenticated)
                {
                    StopStream(BridgeStatus.Failed, "server " + serverAddress + " refused the call (" + e.Status.Detail +
                                                    "); set Auth Token File to a token the server accepts");
                    return false;
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable || e.StatusCode == StatusCode.DeadlineExceeded)
                {
                    DisposeChannel();
                    if (maxConnectAttempts > 0 && backoff.Attempts + 1 >= maxConnectAttempts)
                    {
                        StopStream(BridgeStatus.Failed, string.Format("server {0} unreachable after {1} attempts: {2}",
                                                                      serverAddress, backoff.Attempts + 1, e.Status.Detail));
                        return false;
                    }
                    double d = backoff.NextDelay();
                    SetStatus(BridgeStatus.Retrying, string.Format("server {0} unreachable ({1}); attempt {2}, next in {3:F1} s",
                                                                   serverAddress, e.Status.Detail, backoff.Attempts, d));
                    await Task.Delay(TimeSpan.FromSeconds(d), ct);
                }
            }
        }

        string CheckLimits(global::AvatarBridge.V1.Capabilities caps)
        {
            int rate = input == AudioInput.Clip ? (clip != null ? clip.frequency : 0) : Mic().SampleRate;
            if (input == AudioInput.Clip && clip == null) return "no AudioClip to stream; assign one or call Play(clip)";
            var l = caps.Limits;
            if (l != null && l.MaxSampleRate > 0 && (rate < l.MinSampleRate || rate > l.MaxSampleRate))
                return string.Format("audio at {0} Hz is outside the server's {1}..{2} Hz; {3}", rate, l.MinSampleRate, l.MaxSampleRate,
                                     input == AudioInput.Clip ? "override the clip's sample rate in its Import Settings"
                                                              : "set the Microphone Input's Sample Rate within that range");
            if (!caps.SupportedFps.Contains((uint)frameRate))
                return string.Format("the server does not offer {0} fps (it offers {1})", (int)frameRate, string.Join(", ", caps.SupportedFps));
            return null;
        }

        /// <summary>One stream. Returns true when a microphone stream broke and should be reconnected.</summary>
        async Task<bool> StreamOnceAsync(CancellationToken ct)
        {
            buffer.Reset();
            dsp.Reset();
            clock.Stop();
            info = null;
            feed = new AudioFeed();
            session = new ExpressionSession(buffer);
            var settings = new StreamSettings
            {
                Fps = (int)frameRate, StreamId = name, Engine = engine, Emotion = emotion,
                EmotionStrength = emotionStrength, Intensity = intensity, HeadMotion = headMotion, Seed = seed,
            };
            if (input == AudioInput.Clip)
            {
                if (!PrepareClip()) return false;
                settings.SampleRate = clipRate;
                settings.Channels = AudioPacker.WireChannels(clipChannels);
            }
            else
            {
                if (!StartMic()) return false;
                settings.SampleRate = Mic().SampleRate;
                settings.Channels = 1;
            }
            BridgeChannel ch = channel;
            ExpressionSession s = session;
            AudioFeed f = feed;
            Task call = Task.Run(() => s.RunAsync(ch, settings, f, ct), ct);
            try
            {
                try
                {
                    info = await s.Header;
                }
                catch
                {
                    await call;  // surfaces the call's own error (an RpcException naming the problem)
                    throw;
                }
                DelaySeconds = PlaybackClock.DelaySeconds(info.LookaheadMs, info.Fps, jitterBudgetMs);
                if (input == AudioInput.Clip)
                {
                    sendZeroDsp = AudioSettings.dspTime;
                    clock.Start(sendZeroDsp, DelaySeconds);
                    if (audioSource != null)
                    {
                        audioSource.clip = clip;
                        audioSource.PlayScheduled(clock.StartDspTime);
                        scheduledAudio = true;
                    }
                }
                SetStatus(BridgeStatus.Streaming, string.Format("{0} fps from {1}, delay {2:F0} ms", info.Fps, info.Engine, DelaySeconds * 1000));
                await call;
                var st = s.Status;
                Debug.Log(string.Format("[Avatar Bridge] {0}: stream ended: {1} frames, {2:F2} s of audio; {3}", name,
                                        st != null ? st.FramesSent : 0, st != null ? st.AudioSeconds : 0, buffer.Counters), this);
                if (st != null && st.Warnings.Count > 0)
                    Debug.LogWarning("[Avatar Bridge] " + name + ": server warnings: " + string.Join("; ", st.Warnings), this);
                DisposeChannel();  // the clip still plays out its last DelaySeconds from the buffer
                SetStatus(BridgeStatus.Finished, "finished: " + buffer.Counters);
                return false;
            }
            catch (RpcException e) when (!ct.IsCancellationRequested)
            {
                // Cancelled that we did not ask for (ct is not cancelled here): a load balancer in front of several
                // servers (deploy/haproxy) resets the streams of a backend that died or drained.
                bool transient = e.StatusCode == StatusCode.Unavailable || e.StatusCode == StatusCode.ResourceExhausted
                                 || e.StatusCode == StatusCode.Cancelled;
                string msg = string.Format("stream failed: {0}: {1}", e.StatusCode, e.Status.Detail);
                if (input == AudioInput.Microphone && transient)
                {
                    SetStatus(BridgeStatus.Retrying, msg);
                    DisposeChannel();
                    return true;
                }
                StopStream(BridgeStatus.Failed, msg);
                return false;
            }
        }

        bool PrepareClip()
        {
            if (clip.loadType == AudioClipLoadType.Streaming)
            {
                StopStream(BridgeStatus.Failed, "clip '" + clip.name + "' uses Load Type 'Streaming', whose samples " +
                                                "cannot be read; set it to 'Decompress On Load' in its Import Settings");
                return false;
            }
            if (clip.loadState != AudioDataLoadState.Loaded && !clip.LoadAudioData())
            {
                StopStream(BridgeStatus.Failed, "clip '" + clip.name + "' could not be loaded");
                return false;
            }
            clipChannels = clip.channels;
            clipRate = clip.frequency;
            clipFrames = clip.samples;
            clipSamples = new float[clipFrames * clipChannels];
            if (!clip.GetData(clipSamples, 0))
            {
                StopStream(BridgeStatus.Failed, "could not read the samples of clip '" + clip.name + "'");
                return false;
            }
            sentFrames = 0;
            return true;
        }

        bool StartMic()
        {
            string why = Mic().Begin();  // a reconnect restarts capture
            if (why != null)
            {
                StopStream(BridgeStatus.Failed, why);
                return false;
            }
            micStarted = false;
            return true;
        }

        MicrophoneInput Mic()
        {
            if (microphone == null) microphone = GetComponent<MicrophoneInput>();
            if (microphone == null) microphone = gameObject.AddComponent<MicrophoneInput>();
            return microphone;
        }

        void Update()
        {
            if (Status != BridgeStatus.Streaming || feed == null) return;
            if (input == AudioInput.Clip) FeedClip();
            else FeedMicrophone();
        }

        void FeedClip()
        {
            if (clipSamples == null || sentFrames >= clipFrames) return;
            int upTo = AudioPacker.ClipFramesDue(AudioSettings.dspTime - sendZeroDsp, SendLeadSeconds,
                                                 clipChunkMs / 1000.0, clipRate, sentFrames, clipFrames);
            if (upTo <= sentFrames) return;
            feed.Write(AudioPacker.ToPcm16(clipSamples, clipChannels, sentFrames, upTo - sentFrames));
            sentFrames = upTo;
            if (sentFrames >= clipFrames) feed.End();
        }

        void FeedMicrophone()
        {
            float[] samples;
            int count = microphone.Read(out samples);
            if (count == 0) return;
            if (!micStarted)
            {
                // the first samples were captured count/rate seconds ago
                micStarted = true;
                clock.Start(AudioSettings.dspTime - (double)count / microphone.SampleRate, DelaySeconds);
            }
            feed.Write(AudioPacker.ToPcm16(samples, microphone.Channels, 0, count));
        }

        void LateUpdate()
        {
            if (!clock.IsRunning) return;
            double t = clock.StreamTime(dsp.Update(AudioSettings.dspTime, Time.unscaledTimeAsDouble));
            if (buffer.Sample(t, pose) != SampleResult.Waiting && actor != null) actor.SetPose(pose);
        }

        void StopStream(BridgeStatus status, string message)
        {
            if (cts != null)
            {
                cts.Cancel();
                cts.Dispose();
                cts = null;
            }
            if (feed != null) feed.End();
            DisposeChannel();
            if (scheduledAudio && audioSource != null) audioSource.Stop();
            scheduledAudio = false;
            if (microphone != null) microphone.End();
            clock.Stop();
            clipSamples = null;
            SetStatus(status, message);
        }

        void DisposeChannel()
        {
            if (channel == null) return;
            channel.Dispose();
            channel = null;
        }

        void SetStatus(BridgeStatus status, string message)
        {
            if (status == BridgeStatus.Failed && Status != BridgeStatus.Failed)
                Debug.LogError("[Avatar Bridge] " + name + ": " + message, this);
            Status = status;
            StatusMessage = message;
        }
    }
}

using System;
using System.Threading;
using System.Threading.Tasks;
using AvatarBridge.Core;
using AvatarBridge.Face;
using AvatarBridge.Transport;
using UnityEngine;

namespace AvatarBridge.Samples
{
    /// <summary>
    /// "Say this line": sends <see cref="line"/> to the server's Speak RPC (text to speech + facial animation,
    /// docs/speak.md), plays the returned speech through this object's AudioSource and drives a
    /// <see cref="FaceActor"/> on the same clock (<see cref="SpeechTimeline"/>: the face is shown at the samples
    /// played). <see cref="StopSpeaking"/> is the barge-in: the audio stops and the face eases to rest.
    /// </summary>
    [RequireComponent(typeof(AudioSource))]
    [AddComponentMenu("Avatar Bridge/Samples/Say This Line")]
    public sealed class SayThisLineSample : MonoBehaviour
    {
        [Tooltip("The Face Actor to drive (on your avatar).")]
        [SerializeField] FaceActor actor;
        [Tooltip("What to say: plain text or the SSML subset (<speak>, <p>, <s>, <break time=\"300ms\"/>).")]
        [SerializeField] string line = "Hello! Bob bought a big blue ball for the baby.";
        [Tooltip("Voice id, e.g. espeak:en-us or festival:us-slt-hts; empty = the language's default.")]
        [SerializeField] string voice = "";
        [Tooltip("BCP-47 language (en, en-GB, zh-CN, ja, de, fr, es, ...); empty = en.")]
        [SerializeField] string language = "";
        [SerializeField] string serverAddress = "http://127.0.0.1:50051";
        [Tooltip("Audio Unity has read but not yet played (its DSP buffer); the face is shown this much behind the samples read.")]
        [SerializeField, Range(0f, 200f)] float outputLatencyMs = 40f;
        [Tooltip("Say the line when play mode starts.")]
        [SerializeField] bool sayOnStart = true;

        BridgeChannel channel;
        SpeakSession session;
        SpeechTimeline timeline;
        CancellationTokenSource cts;
        readonly FacePose pose = new FacePose();

        /// <summary>Whether a line is being spoken (or its face is still easing to rest).</summary>
        public bool IsSpeaking { get { return timeline != null && !timeline.Finished; } }

        void Start()
        {
            if (sayOnStart) Say(line);
        }

        /// <summary>Says <paramref name="text"/>, replacing any line still being spoken.</summary>
        public async void Say(string text)
        {
            Cancel();
            if (actor == null) { Debug.LogError("[Avatar Bridge] Say This Line: set Actor on " + name, this); return; }
            cts = new CancellationTokenSource();
            var ct = cts.Token;
            if (channel == null) channel = new BridgeChannel(serverAddress);
            var s = new SpeakSession();
            session = s;
            Task run = Task.Run(() => s.RunAsync(channel, new SpeakSettings
            {
                Text = text, Voice = voice, Language = language, Fps = 60, StreamId = name,
            }, ct));
            try
            {
                SpeechTimeline tl = await s.Timeline;  // back on the main thread
                if (ct.IsCancellationRequested) return;
                timeline = tl;
                // A streaming clip pulls samples from the timeline; the timeline's clock advances as they are read.
                var clip = AudioClip.Create("Avatar Bridge speech", tl.SampleRate * 600, 1, tl.SampleRate, true,
                                            data => tl.ReadAudio(data, 0, data.Length));
                var source = GetComponent<AudioSource>();
                source.clip = clip;
                source.Play();
                await run;
            }
            catch (OperationCanceledException) { }
            catch (Exception e)
            {
                Debug.LogError("[Avatar Bridge] Speak failed: " + e.Message, this);
            }
        }

        /// <summary>Barge-in: stops the speech where it is heard; the server's frames ease the face to rest.</summary>
        public void StopSpeaking()
        {
            if (session == null || timeline == null) return;
            session.Stop(Math.Max(0.0, timeline.PlaybackTime - outputLatencyMs / 1000.0));
        }

        void Update()
        {
            if (timeline == null || actor == null) return;
            double t = timeline.PlaybackTime - outputLatencyMs / 1000.0;
            if (timeline.Sample(Math.Max(0.0, t), pose)) actor.SetPose(pose);
            if (timeline.Finished && t > (double)timeline.ReceivedSamples / timeline.SampleRate + 0.3)
            {
                GetComponent<AudioSource>().Stop();
                timeline = null;
            }
        }

        void Cancel()
        {
            if (cts != null) { cts.Cancel(); cts.Dispose(); cts = null; }
            session = null;
            timeline = null;
        }

        void OnDisable()
        {
            Cancel();
            if (channel != null) { channel.Dispose(); channel = null; }
        }
    }
}

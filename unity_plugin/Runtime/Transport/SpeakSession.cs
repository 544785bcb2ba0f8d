using System;
using System.Threading;
using System.Threading.Tasks;
using AvatarBridge.Core;
using Grpc.Core;
using Contract = global::AvatarBridge.V1;

namespace AvatarBridge.Transport
{
    /// <summary>What a Speak call asks for (the <c>SpeakStart</c>, docs/speak.md).</summary>
    public sealed class SpeakSettings
    {
        /// <summary>UTF-8 plain text or the SSML subset (speak, p, s, break); at most 20000 bytes.</summary>
        public string Text = "";
        /// <summary>A voice id (e.g. <c>espeak:en-us</c>, <c>festival:us-slt-hts</c>); empty = the language's default.</summary>
        public string Voice = "";
        /// <summary>BCP-47 language (e.g. <c>en</c>, <c>zh-CN</c>); empty = <c>en</c> or the voice's language.</summary>
        public string Language = "";
        /// <summary>0.5..2; 0 = the voice's normal speed.</summary>
        public float SpeakingRate;
        /// <summary>30 or 60.</summary>
        public int Fps = 60;
        /// <summary>Echoed back and used in the server's logs and metrics.</summary>
        public string StreamId = "";
        /// <summary>The contract's emotion preset.</summary>
        public Contract.Emotion Emotion = Contract.Emotion.Neutral;
        /// <summary>0..2 mouth articulation, or negative for the server's default.</summary>
        public float Intensity = -1f;
        /// <summary>0..2 head and eye motion, or negative for the server's default.</summary>
        public float HeadMotion = -1f;
    }

    /// <summary>
    /// One Speak call: sends the <c>SpeakStart</c>, then feeds every <c>SpeakAudio</c> chunk and frame into a
    /// <see cref="SpeechTimeline"/> created from the <c>SpeakHeader</c>, so audio and face play on one clock.
    /// <see cref="Stop"/> is the barge-in. Runs on a worker thread; the main and audio threads read <see cref="Timeline"/>.
    /// </summary>
    public sealed class SpeakSession
    {
        readonly TaskCompletionSource<SpeechTimeline> timeline =
            new TaskCompletionSource<SpeechTimeline>(TaskCreationOptions.RunContinuationsAsynchronously);
        readonly TaskCompletionSource<double> stop =
            new TaskCompletionSource<double>(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes with the utterance's timeline once the header arrived (or faults with the call's error).</summary>
        public Task<SpeechTimeline> Timeline { get { return timeline.Task; } }

        /// <summary>The voice the server chose (null before the header).</summary>
        public string Voice { get; private set; }

        /// <summary>The final SpeakStatus (null until the call ended normally).</summary>
        public Contract.SpeakStatus Status { get; private set; }

        /// <summary>
        /// Barge-in at <paramref name="atTime"/> seconds of the utterance heard (normally the timeline's
        /// <see cref="SpeechTimeline.PlaybackTime"/>): the timeline drops later audio at once, the server stops
        /// synthesising and sends frames that ease the face to rest. Later calls do nothing.
        /// </summary>
        public void Stop(double atTime)
        {
            if (!stop.TrySetResult(atTime)) return;
            if (timeline.Task.Status == TaskStatus.RanToCompletion) timeline.Task.Result.Stop(atTime);
        }

        /// <summary>Runs the call to its end. Throws RpcException on a gRPC error, OperationCanceledException on cancel.</summary>
        public async Task RunAsync(BridgeChannel channel, SpeakSettings settings, CancellationToken ct)
        {
            if (settings == null) throw new ArgumentNullException("settings");
            try
            {
                using (var call = channel.Client.Speak(cancellationToken: ct))
                {
                    await call.RequestStream.WriteAsync(new Contract.SpeakRequest { Start = BuildStart(settings) })
                              .ConfigureAwait(false);
                    Task stopping = SendStopAsync(call.RequestStream, ct);
                    SpeechTimeline tl = null;
                    StreamLayout layout = null;
                    while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
                    {
                        Contract.SpeakResponse r = call.ResponseStream.Current;
                        switch (r.MsgCase)
                        {
                            case Contract.SpeakResponse.MsgOneofCase.Header:
                                Contract.ExpressionHeader e = r.Header.Expression;
                                layout = new StreamLayout(e.BlendshapeNames, e.BoneNames);
                                tl = new SpeechTimeline((int)r.Header.SampleRate, (int)e.Fps);
                                Voice = r.Header.Voice;
                                if (stop.Task.Status == TaskStatus.RanToCompletion) tl.Stop(stop.Task.Result);
                                timeline.TrySetResult(tl);
                                break;
                            case Contract.SpeakResponse.MsgOneofCase.Audio:
                                if (tl == null) throw new InvalidOperationException("audio before the speak header");
                                byte[] pcm = r.Audio.Pcm16.ToByteArray();
                                tl.AddAudio((long)r.Audio.SampleIndex, pcm, 0, pcm.Length);
                                break;
                            case Contract.SpeakResponse.MsgOneofCase.Frames:
                                if (layout == null) throw new InvalidOperationException("frames before the speak header");
                                foreach (Contract.Frame f in r.Frames.Frames)
                                {
                                    var frame = new FaceFrame();
                                    Contract.Vector3 t = f.HeadTranslation;
                                    layout.Fill(frame, (long)f.Index, f.Time, f.Weights, f.Rotations, t != null,
                                                t != null ? new Vec3(t.X, t.Y, t.Z) : Vec3.Zero);
                                    tl.AddFrame(frame);
                                }
                                break;
                            case Contract.SpeakResponse.MsgOneofCase.Status:
                                Status = r.Status;
                                if (tl != null) tl.Complete();
                                break;
                        }
                    }
                    stop.TrySetCanceled();  // the call ended: no stop to send any more
                    await stopping.ConfigureAwait(false);
                }
            }
            catch (Exception ex)
            {
                timeline.TrySetException(ex);
                throw;
            }
            timeline.TrySetException(new InvalidOperationException("the Speak call ended without a header"));
        }

        async Task SendStopAsync(IClientStreamWriter<Contract.SpeakRequest> writer, CancellationToken ct)
        {
            double at;
            try
            {
                using (ct.Register(() => stop.TrySetCanceled()))
                    at = await stop.Task.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            await writer.WriteAsync(new Contract.SpeakRequest { Stop = new Contract.SpeakStop { AtTime = at } }).ConfigureAwait(false);
            await writer.CompleteAsync().ConfigureAwait(false);
        }

        static Contract.SpeakStart BuildStart(SpeakSettings s)
        {
            var style = new Contract.ExpressionStyle { Emotion = s.Emotion };
            if (s.Intensity >= 0) style.Intensity = s.Intensity;
            if (s.HeadMotion >= 0) style.HeadMotion = s.HeadMotion;
            return new Contract.SpeakStart
            {
                Text = s.Text ?? "",
                Voice = s.Voice ?? "",
                Language = s.Language ?? "",
                SpeakingRate = s.SpeakingRate,
                Fps = (uint)s.Fps,
                StreamId = s.StreamId ?? "",
                Style = style,
            };
        }
    }
}

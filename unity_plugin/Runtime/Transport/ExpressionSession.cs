using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using AvatarBridge.Core;
using Google.Protobuf;
using Grpc.Core;
using Contract = global::AvatarBridge.V1;

namespace AvatarBridge.Transport
{
    /// <summary>What a stream asks for (the <c>StreamHeader</c>).</summary>
    public sealed class StreamSettings
    {
        /// <summary>30 or 60.</summary>
        public int Fps = 30;
        /// <summary>Rate of the audio sent, 8000..48000.</summary>
        public int SampleRate = 16000;
        /// <summary>1 or 2 (see <see cref="AudioPacker.WireChannels"/>).</summary>
        public int Channels = 1;
        /// <summary>Echoed back and used in the server's logs and metrics.</summary>
        public string StreamId = "";
        /// <summary>Engine name; empty = the server's default.</summary>
        public string Engine = "";
        /// <summary>The contract's emotion preset.</summary>
        public Contract.Emotion Emotion = Contract.Emotion.Neutral;
        /// <summary>0..1, or negative for the server's default.</summary>
        public float EmotionStrength = -1f;
        /// <summary>0..2, or negative for the server's default.</summary>
        public float Intensity = -1f;
        /// <summary>0..2, or negative for the server's default.</summary>
        public float HeadMotion = -1f;
        /// <summary>Seeds blinks and idle motion; 0 = derived from the stream id.</summary>
        public ulong Seed;
    }

    /// <summary>The stream's <c>ExpressionHeader</c>, as the client needs it.</summary>
    public sealed class StreamInfo
    {
        /// <summary>Engine that serves the stream.</summary>
        public string Engine;
        /// <summary>Frames per second.</summary>
        public int Fps;
        /// <summary>Audio the engine needs past a frame before it can send it, milliseconds.</summary>
        public float LookaheadMs;
        /// <summary>The audio clock of the time codes.</summary>
        public int SampleRate;
        /// <summary>Header names this client does not know (a newer server); ignored.</summary>
        public IList<string> UnknownNames;
    }

    /// <summary>
    /// One StreamExpression call: sends the header and the <see cref="AudioFeed"/>'s chunks, and pushes every
    /// received frame, converted to canonical order, into a <see cref="JitterBuffer"/>. Runs on a worker thread;
    /// the main thread reads <see cref="Header"/>, <see cref="FramesReceived"/> and the buffer.
    /// </summary>
    public sealed class ExpressionSession
    {
        readonly TaskCompletionSource<StreamInfo> header =
            new TaskCompletionSource<StreamInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
        long framesReceived;

        /// <summary>Where frames go.</summary>
        public readonly JitterBuffer Buffer;

        /// <summary>Creates a session feeding <paramref name="buffer"/>.</summary>
        public ExpressionSession(JitterBuffer buffer)
        {
            if (buffer == null) throw new ArgumentNullException("buffer");
            Buffer = buffer;
        }

        /// <summary>Completes with the stream's header (or faults with the call's error).</summary>
        public Task<StreamInfo> Header { get { return header.Task; } }

        /// <summary>Frames received so far.</summary>
        public long FramesReceived { get { return Interlocked.Read(ref framesReceived); } }

        /// <summary>The final StreamStatus (null until the stream ended normally).</summary>
        public Contract.StreamStatus Status { get; private set; }

        /// <summary>Runs the call to its end. Throws RpcException on a gRPC error, OperationCanceledException on cancel.</summary>
        public async Task RunAsync(BridgeChannel channel, StreamSettings settings, AudioFeed feed, CancellationToken ct)
        {
            try
            {
                using (var call = channel.Client.StreamExpression(cancellationToken: ct))
                {
                    await call.RequestStream.WriteAsync(new Contract.ExpressionRequest { Header = BuildHeader(settings) })
                              .ConfigureAwait(false);
                    Task sending = SendAudioAsync(call.RequestStream, feed, ct);
                    StreamLayout layout = null;
                    while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
                    {
                        Contract.ExpressionResponse r = call.ResponseStream.Current;
                        switch (r.MsgCase)
                        {
                            case Contract.ExpressionResponse.MsgOneofCase.Header:
                                layout = new StreamLayout(r.Header.BlendshapeNames, r.Header.BoneNames);
                                header.TrySetResult(new StreamInfo
                                {
                                    Engine = r.Header.Engine, Fps = (int)r.Header.Fps, LookaheadMs = r.Header.LookaheadMs,
                                    SampleRate = (int)r.Header.SampleRate, UnknownNames = layout.UnknownNames,
                                });
                                break;
                            case Contract.ExpressionResponse.MsgOneofCase.Frames:
                                if (layout == null) throw new InvalidOperationException("frames before the stream header");
                                foreach (Contract.Frame f in r.Frames.Frames)
                                {
                                    var frame = new FaceFrame();
                                    Contract.Vector3 t = f.HeadTranslation;
                                    layout.Fill(frame, (long)f.Index, f.Time, f.Weights, f.Rotations, t != null,
                                                t != null ? new Vec3(t.X, t.Y, t.Z) : Vec3.Zero);
                                    Buffer.Push(frame);
                                    Interlocked.Increment(ref framesReceived);
                                }
                                break;
                            case Contract.ExpressionResponse.MsgOneofCase.Status:
                                Status = r.Status;
                                Buffer.MarkEnded();
                                break;
                        }
                    }
                    await sending.ConfigureAwait(false);
                }
            }
            catch (Exception e)
            {
                header.TrySetException(e);
                throw;
            }
            header.TrySetException(new InvalidOperationException("the stream ended without a header"));
        }

        static async Task SendAudioAsync(IClientStreamWriter<Contract.ExpressionRequest> writer, AudioFeed feed,
                                         CancellationToken ct)
        {
            while (true)
            {
                byte[] chunk = await feed.ReadAsync(ct).ConfigureAwait(false);
                if (chunk == null) break;
                await writer.WriteAsync(new Contract.ExpressionRequest
                {
                    Audio = new Contract.AudioChunk { Data = ByteString.CopyFrom(chunk) },
                }).ConfigureAwait(false);
            }
            await writer.WriteAsync(new Contract.ExpressionRequest { End = new Contract.EndOfAudio() }).ConfigureAwait(false);
            await writer.CompleteAsync().ConfigureAwait(false);
        }

        static Contract.StreamHeader BuildHeader(StreamSettings s)
        {
            var style = new Contract.ExpressionStyle { Emotion = s.Emotion, Seed = s.Seed };
            if (s.EmotionStrength >= 0) style.EmotionStrength = s.EmotionStrength;
            if (s.Intensity >= 0) style.Intensity = s.Intensity;
            if (s.HeadMotion >= 0) style.HeadMotion = s.HeadMotion;
            return new Contract.StreamHeader
            {
                Encoding = Contract.AudioEncoding.Pcm16,
                SampleRate = (uint)s.SampleRate,
                Channels = (uint)s.Channels,
                Fps = (uint)s.Fps,
                StreamId = s.StreamId ?? "",
                Engine = s.Engine ?? "",
                Style = style,
            };
        }
    }
}

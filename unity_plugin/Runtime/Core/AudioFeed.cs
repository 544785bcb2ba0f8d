using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace AvatarBridge.Core
{
    /// <summary>
    /// PCM16 chunks from Unity's main thread (clip or microphone) to the sending task, then an end marker.
    /// Unbounded by design: the producer is paced by real time, so it holds at most a few chunks.
    /// </summary>
    public sealed class AudioFeed
    {
        readonly Queue<byte[]> chunks = new Queue<byte[]>();
        readonly SemaphoreSlim available = new SemaphoreSlim(0);
        readonly object gate = new object();
        bool ended;

        /// <summary>Bytes queued since creation.</summary>
        public long BytesQueued { get; private set; }

        /// <summary>Queues a chunk (ignored after <see cref="End"/>).</summary>
        public void Write(byte[] pcm16)
        {
            if (pcm16 == null || pcm16.Length == 0) return;
            lock (gate)
            {
                if (ended) return;
                chunks.Enqueue(pcm16);
                BytesQueued += pcm16.Length;
            }
            available.Release();
        }

        /// <summary>No more audio: the sender sends EndOfAudio after the queued chunks.</summary>
        public void End()
        {
            lock (gate)
            {
                if (ended) return;
                ended = true;
            }
            available.Release();
        }

        /// <summary>The next chunk, or null once the feed has ended and is drained.</summary>
        public async Task<byte[]> ReadAsync(CancellationToken ct)
        {
            while (true)
            {
                await available.WaitAsync(ct).ConfigureAwait(false);
                lock (gate)
                {
                    if (chunks.Count > 0) return chunks.Dequeue();
                    if (ended)
                    {
                        available.Release();  // let later readers see the end too
                        return null;
                    }
                }
            }
        }
    }
}

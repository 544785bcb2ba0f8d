using System;
using System.Collections.Generic;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;
using AvatarBridge.Core;
using Cysharp.Net.Http;
using Grpc.Core;
using Grpc.Net.Client;
using Contract = global::AvatarBridge.V1;

namespace AvatarBridge.Transport
{
    /// <summary>
    /// One gRPC channel to an avatar-bridge server: Grpc.Net.Client over Cysharp's YetAnotherHttpHandler
    /// (HTTP/2 in Unity). <c>http://</c> addresses use cleartext HTTP/2 (<c>Http2Only = true</c>, as the server
    /// speaks h2c); <c>https://</c> uses TLS with ALPN. Every live channel is tracked in <see cref="ChannelRegistry"/>
    /// so leaving play mode can shut down anything a component forgot.
    /// </summary>
    public sealed class BridgeChannel : IDisposable
    {
        readonly GrpcChannel channel;
        int disposed;

        /// <summary>The generated client of the AvatarBridge service.</summary>
        public Contract.AvatarBridge.AvatarBridgeClient Client { get; private set; }

        /// <summary>The server address this channel talks to.</summary>
        public string Address { get; private set; }

        /// <summary>Opens a plaintext channel (no connection is made until the first call).</summary>
        /// <param name="address">e.g. <c>http://127.0.0.1:50051</c> (a bare host:port means http://).</param>
        /// <param name="maxReceiveMessageBytes">Largest response accepted (frame batches are small; 4 MiB is ample).</param>
        public BridgeChannel(string address, int maxReceiveMessageBytes = 4 * 1024 * 1024)
            : this(address, ConnectionSecurity.None, maxReceiveMessageBytes)
        {
        }

        /// <summary>
        /// Opens a channel with TLS (when <paramref name="security"/> has a CA: the server's certificate must chain to
        /// it), a client certificate for mutual TLS, and the bearer token on every call (docs/security.md).
        /// </summary>
        /// <param name="address">e.g. <c>https://studio-gpu:50051</c>; a bare host:port means https:// with a CA, else http://.</param>
        /// <param name="security">From <see cref="ConnectionSecurity.FromFiles"/>; <see cref="ConnectionSecurity.None"/> = plaintext.</param>
        /// <param name="maxReceiveMessageBytes">Largest response accepted (frame batches are small; 4 MiB is ample).</param>
        public BridgeChannel(string address, ConnectionSecurity security, int maxReceiveMessageBytes = 4 * 1024 * 1024)
        {
            if (security == null) security = ConnectionSecurity.None;
            Address = security.ResolveAddress(address);
            Uri uri;
            if (!Uri.TryCreate(Address, UriKind.Absolute, out uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
                throw new ArgumentException("server address '" + address + "' is not http(s)://host:port", "address");
            var handler = new YetAnotherHttpHandler
            {
                Http2Only = uri.Scheme == "http",  // cleartext: HTTP/2 prior knowledge (h2c)
            };
            if (security.CaPem != null) handler.RootCertificates = security.CaPem;  // trust only this CA
            if (security.ClientCertificatePem != null)
            {
                handler.ClientAuthCertificates = security.ClientCertificatePem;
                handler.ClientAuthKey = security.ClientKeyPem;
            }
            HttpMessageHandler outer = handler;
            if (security.AuthorizationValue != null) outer = new AuthorizationHandler(handler, security.AuthorizationValue);
            channel = GrpcChannel.ForAddress(Address, new GrpcChannelOptions
            {
                HttpHandler = outer,
                DisposeHttpClient = true,
                MaxReceiveMessageSize = maxReceiveMessageBytes,
            });
            Client = new Contract.AvatarBridge.AvatarBridgeClient(channel);
            ChannelRegistry.Add(this);
        }

        /// <summary>Asks the server what it can do; fails with RpcException (e.g. Unavailable) within <paramref name="timeout"/>.</summary>
        public async Task<Contract.Capabilities> GetCapabilitiesAsync(TimeSpan timeout, CancellationToken ct)
        {
            return await Client.GetCapabilitiesAsync(new Contract.GetCapabilitiesRequest(),
                                                     deadline: DateTime.UtcNow + timeout, cancellationToken: ct);
        }

        /// <summary>Whether <see cref="Dispose"/> ran.</summary>
        public bool IsDisposed { get { return Volatile.Read(ref disposed) != 0; } }

        /// <summary>Shuts the channel down (cancelling its calls) and releases the HTTP handler. Idempotent.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) != 0) return;
            ChannelRegistry.Remove(this);
            // Cancels the channel's active calls and releases its connection; Dispose frees the HTTP handler.
            // Not waited on: this runs on Unity's main thread, whose context a continuation may need.
            Task shutdown = channel.ShutdownAsync();
            if (!shutdown.IsCompleted)
                shutdown.ContinueWith(t => t.Exception, TaskContinuationOptions.OnlyOnFaulted);
            channel.Dispose();
        }
    }

    /// <summary>Live channels, so play-mode exit (and domain reload) can close any that are left.</summary>
    public static class ChannelRegistry
    {
        static readonly object gate = new object();
        static readonly List<BridgeChannel> live = new List<BridgeChannel>();

        /// <summary>Channels open now.</summary>
        public static int Count { get { lock (gate) return live.Count; } }

        internal static void Add(BridgeChannel c) { lock (gate) live.Add(c); }

        internal static void Remove(BridgeChannel c) { lock (gate) live.Remove(c); }

        /// <summary>Disposes every open channel; returns how many were still open (a leak if above 0 after components stopped).</summary>
        public static int ShutdownAll()
        {
            BridgeChannel[] all;
            lock (gate) all = live.ToArray();
            foreach (var c in all) c.Dispose();
            return all.Length;
        }
    }
}

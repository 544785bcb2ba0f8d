using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;
using AvatarBridge.Core;

namespace AvatarBridge.Transport
{
    /// <summary>
    /// Puts <c>authorization: Bearer &lt;token&gt;</c> on every HTTP/2 request of a channel. gRPC metadata travels as
    /// HTTP/2 headers, so this is the call metadata the server checks, for every RPC of the channel, over TLS or
    /// cleartext alike (Grpc.Net.Client's call credentials would refuse a cleartext channel).
    /// </summary>
    public sealed class AuthorizationHandler : DelegatingHandler
    {
        readonly string value;

        /// <summary>Wraps <paramref name="inner"/>; <paramref name="authorizationValue"/> is e.g. <c>Bearer abc...</c>.</summary>
        public AuthorizationHandler(HttpMessageHandler inner, string authorizationValue) : base(inner)
        {
            value = authorizationValue;
        }

        /// <summary>Adds the header, then sends through the inner handler.</summary>
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Remove(ConnectionSecurity.AuthorizationKey);
            request.Headers.TryAddWithoutValidation(ConnectionSecurity.AuthorizationKey, value);
            return base.SendAsync(request, cancellationToken);
        }
    }
}

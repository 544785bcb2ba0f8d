// NUnit tests for unity_plugin/Runtime/Transport/AuthorizationHandler.cs, compiled under Mono against the real
// System.Net.Http by tests/test_unity_core.py (the rest of the Transport assembly needs Grpc.Net.Client and Unity's
// HTTP/2 handler, so it is type-checked only). The inner handler stands in for YetAnotherHttpHandler and records
// what would go on the wire.
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;
using AvatarBridge.Core;
using NUnit.Framework;

namespace AvatarBridge.Transport.Tests
{
    sealed class Recorder : HttpMessageHandler
    {
        public HttpRequestMessage Last;
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            Last = request;
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK));
        }
    }

    [TestFixture]
    public class AuthorizationHandlerTests
    {
        const string Token = "unity-token-0123456789abcdef";

        static HttpRequestMessage Call(string method)
        {
            return new HttpRequestMessage(HttpMethod.Post, "http://127.0.0.1:50051/avatarbridge.v1.AvatarBridge/" + method);
        }

        [Test]
        public void EveryCallCarriesTheBearerTokenOnce()
        {
            var security = new ConnectionSecurity(null, Token);
            var inner = new Recorder();
            var invoker = new HttpMessageInvoker(new AuthorizationHandler(inner, security.AuthorizationValue));
            foreach (string method in new[] { "GetCapabilities", "StreamExpression", "Speak" })
            {
                HttpResponseMessage r = invoker.SendAsync(Call(method), CancellationToken.None).Result;
                Assert.AreEqual(HttpStatusCode.OK, r.StatusCode);
                CollectionAssert.AreEqual(new[] { "Bearer " + Token },
                                          inner.Last.Headers.GetValues(ConnectionSecurity.AuthorizationKey).ToArray(), method);
            }
        }

        [Test]
        public void AnAuthorizationHeaderAlreadySetIsReplaced()
        {
            var inner = new Recorder();
            var invoker = new HttpMessageInvoker(new AuthorizationHandler(inner, "Bearer " + Token));
            HttpRequestMessage req = Call("GetCapabilities");
            req.Headers.TryAddWithoutValidation("authorization", "Bearer stale-token-0000000000");
            invoker.SendAsync(req, CancellationToken.None).Wait();
            CollectionAssert.AreEqual(new[] { "Bearer " + Token }, inner.Last.Headers.GetValues("authorization").ToArray());
        }
    }
}

using System;
using System.IO;
using NUnit.Framework;

namespace AvatarBridge.Core.Tests
{
    /// <summary>TLS CA, client certificate and bearer token options (what the Transport assembly sends).</summary>
    [TestFixture]
    public class ConnectionSecurityTests
    {
        const string Ca = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
        const string Token = "unity-token-0123456789abcdef";
        string dir;

        [SetUp]
        public void MakeDir()
        {
            dir = Path.Combine(Path.GetTempPath(), "ab-sec-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
        }

        [TearDown]
        public void RemoveDir() { Directory.Delete(dir, true); }

        string Write(string name, string text)
        {
            string p = Path.Combine(dir, name);
            File.WriteAllText(p, text);
            return p;
        }

        [Test]
        public void FilesGiveTheCaPemAndTheBearerValue()
        {
            var s = ConnectionSecurity.FromFiles(Write("ca.pem", Ca), Write("token", "# ours\n\n  " + Token + "  \nsecond\n"));
            Assert.AreEqual(Ca, s.CaPem);
            Assert.IsTrue(s.UsesTls);
            Assert.AreEqual(Token, s.Token);
            Assert.AreEqual("authorization", ConnectionSecurity.AuthorizationKey);
            Assert.AreEqual("Bearer " + Token, s.AuthorizationValue);
            Assert.AreEqual("TLS + bearer token", s.ToString());
            StringAssert.DoesNotContain(Token, s.ToString());
        }

        [Test]
        public void NothingGivenIsPlaintextWithoutAToken()
        {
            var s = ConnectionSecurity.FromFiles("", null);
            Assert.IsFalse(s.UsesTls);
            Assert.IsNull(s.AuthorizationValue);
            Assert.AreEqual("plaintext", ConnectionSecurity.None.ToString());
            Assert.AreEqual("http://10.0.0.5:50051", s.ResolveAddress("10.0.0.5:50051"));
        }

        [Test]
        public void UnreadableOrWrongFilesNameTheFile()
        {
            string missing = Path.Combine(dir, "no-such-ca.pem");
            var e = Assert.Throws<ArgumentException>(() => ConnectionSecurity.FromFiles(missing, null));
            StringAssert.Contains("cannot read TLS CA file '" + missing + "'", e.Message);
            e = Assert.Throws<ArgumentException>(() => ConnectionSecurity.FromFiles(Write("key.pem", "-----BEGIN PRIVATE KEY-----\n"), null));
            StringAssert.Contains("holds no PEM certificate", e.Message);
            e = Assert.Throws<ArgumentException>(() => ConnectionSecurity.FromFiles(null, Path.Combine(dir, "no-token")));
            StringAssert.Contains("cannot read token file", e.Message);
            e = Assert.Throws<ArgumentException>(() => ConnectionSecurity.FromFiles(null, Write("empty", "# none yet\n\n")));
            StringAssert.Contains("holds no token", e.Message);
        }

        [Test]
        public void MutualTlsNeedsCertificateKeyAndCa()
        {
            string cert = Write("client.pem", "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n");
            string key = Write("client.key", "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n");
            var s = ConnectionSecurity.FromFiles(Write("ca.pem", Ca), null, cert, key);
            Assert.AreEqual("mutual TLS", s.ToString());
            Assert.IsNotNull(s.ClientCertificatePem);
            Assert.IsNotNull(s.ClientKeyPem);
            Assert.Throws<ArgumentException>(() => ConnectionSecurity.FromFiles(Write("ca2.pem", Ca), null, cert, null));
            Assert.Throws<ArgumentException>(() => ConnectionSecurity.FromFiles(null, null, cert, key));
        }

        [Test]
        public void AddressSchemeFollowsTls()
        {
            var tls = new ConnectionSecurity(Ca, Token);
            Assert.AreEqual("https://studio-gpu:50051", tls.ResolveAddress("studio-gpu:50051"));
            Assert.AreEqual("https://studio-gpu:50051", tls.ResolveAddress(" https://studio-gpu:50051 "));
            var e = Assert.Throws<ArgumentException>(() => tls.ResolveAddress("http://studio-gpu:50051"));
            StringAssert.Contains("use https://studio-gpu:50051", e.Message);
            Assert.Throws<ArgumentException>(() => tls.ResolveAddress(" "));
        }

        [Test]
        public void ATokenWithSpacesIsRefusedWithoutEchoingIt()
        {
            var e = Assert.Throws<ArgumentException>(() => new ConnectionSecurity(null, "two words-0123456789"));
            StringAssert.DoesNotContain("two words", e.Message);
        }
    }
}

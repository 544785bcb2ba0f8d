using System;
using System.IO;

namespace AvatarBridge.Core
{
    /// <summary>
    /// How a client reaches a secured avatar-bridge server (docs/security.md): a CA certificate (PEM) that signed
    /// the server's certificate turns TLS on, an optional client certificate and key answer a mutual-TLS server, and
    /// a bearer token goes with every call as the <c>authorization</c> metadata. Engine-free; the Transport assembly
    /// hands these to the HTTP/2 handler. The token never appears in <see cref="ToString"/> or in an error.
    /// </summary>
    public sealed class ConnectionSecurity
    {
        /// <summary>The metadata key the server reads the token from.</summary>
        public const string AuthorizationKey = "authorization";

        /// <summary>Plaintext, no token (a server on this machine or a trusted network).</summary>
        public static readonly ConnectionSecurity None = new ConnectionSecurity(null, null, null, null);

        /// <summary>CA certificate(s), PEM; null = plaintext (or the platform's roots for an https:// address).</summary>
        public string CaPem { get; private set; }
        /// <summary>This client's certificate chain, PEM, for a mutual-TLS server; null = none.</summary>
        public string ClientCertificatePem { get; private set; }
        /// <summary>Its private key, PEM; null = none.</summary>
        public string ClientKeyPem { get; private set; }
        /// <summary>The bearer token; null = none.</summary>
        public string Token { get; private set; }

        /// <summary>True when a CA was given: the channel speaks TLS (https://).</summary>
        public bool UsesTls { get { return CaPem != null; } }

        /// <summary>The <c>authorization</c> value sent with every call (<c>Bearer &lt;token&gt;</c>); null without a token.</summary>
        public string AuthorizationValue { get { return Token == null ? null : "Bearer " + Token; } }

        /// <summary>From PEM text and a token already in memory; empty strings count as not given.</summary>
        public ConnectionSecurity(string caPem, string token, string clientCertificatePem = null, string clientKeyPem = null)
        {
            CaPem = Blank(caPem) ? null : caPem;
            Token = Blank(token) ? null : token.Trim();
            ClientCertificatePem = Blank(clientCertificatePem) ? null : clientCertificatePem;
            ClientKeyPem = Blank(clientKeyPem) ? null : clientKeyPem;
            if ((ClientCertificatePem == null) != (ClientKeyPem == null))
                throw new ArgumentException("a client certificate and its key go together (mutual TLS)");
            if (ClientCertificatePem != null && CaPem == null)
                throw new ArgumentException("a client certificate needs the CA file too: mutual TLS is TLS plus a client certificate");
            if (CaPem != null && CaPem.IndexOf("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal) < 0)
                throw new ArgumentException("the TLS CA holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
            if (Token != null && Token.IndexOfAny(new[] { ' ', '\t', '\r', '\n' }) >= 0)
                throw new ArgumentException("the token may not contain spaces or line breaks");
        }

        /// <summary>
        /// Reads the files; empty paths count as not given. Throws <see cref="ArgumentException"/> naming the file
        /// (never the token) when one cannot be read or holds nothing usable.
        /// </summary>
        public static ConnectionSecurity FromFiles(string caFile, string tokenFile, string clientCertificateFile = null,
                                                   string clientKeyFile = null)
        {
            string ca = Blank(caFile) ? null : ReadText(caFile, "TLS CA file");
            if (ca != null && ca.IndexOf("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal) < 0)
                throw new ArgumentException("TLS CA file '" + caFile + "' holds no PEM certificate; give the CA " +
                                            "certificate that signed the server's (docs/security.md)");
            string token = Blank(tokenFile) ? null : ReadToken(tokenFile);
            string cert = Blank(clientCertificateFile) ? null : ReadText(clientCertificateFile, "client certificate file");
            string key = Blank(clientKeyFile) ? null : ReadText(clientKeyFile, "client key file");
            return new ConnectionSecurity(ca, token, cert, key);
        }

        /// <summary>The first line of a token file that is neither blank nor a # comment.</summary>
        public static string ReadToken(string path)
        {
            foreach (string line in ReadText(path, "token file").Split('\n'))
            {
                string t = line.Trim();
                if (t.Length > 0 && t[0] != '#') return t;
            }
            throw new ArgumentException("token file '" + path + "' holds no token (one line with the token)");
        }

        /// <summary>
        /// The channel address for <paramref name="address"/>: a bare host:port gets https:// with TLS, http://
        /// without; an http:// address with a CA is refused (TLS needs https://).
        /// </summary>
        public string ResolveAddress(string address)
        {
            if (Blank(address)) throw new ArgumentException("server address is empty; e.g. http://127.0.0.1:50051");
            string a = address.Trim();
            if (!a.Contains("://")) return (UsesTls ? "https://" : "http://") + a;
            if (UsesTls && a.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException("server address '" + a + "' is http:// but a TLS CA file is set; use https://" +
                                            a.Substring("http://".Length));
            return a;
        }

        /// <summary>What is in use, for logs and the inspector; never the token itself.</summary>
        public override string ToString()
        {
            string s = UsesTls ? (ClientCertificatePem != null ? "mutual TLS" : "TLS") : "plaintext";
            return Token != null ? s + " + bearer token" : s;
        }

        static bool Blank(string s) { return string.IsNullOrEmpty(s) || s.Trim().Length == 0; }

        static string ReadText(string path, string what)
        {
            try
            {
                return File.ReadAllText(path);
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException || e is ArgumentException ||
                                      e is NotSupportedException)
            {
                throw new ArgumentException("cannot read " + what + " '" + path + "': " + e.Message);
            }
        }
    }
}

"""Transport security for the gRPC server: TLS / mutual-TLS credentials, bearer tokens (reloaded on SIGHUP),
the interceptor that checks them, and the rule that refuses a plaintext, token-less non-loopback bind.

docs/security.md says how to use it. Health checks (grpc.health.v1.Health) are answered without a token: load
balancers and orchestrators probe liveness with tools that cannot carry a bearer token, and the answer reveals
only SERVING / NOT_SERVING. Everything else, server reflection included, needs a token when tokens are on. TLS
(and the client certificate under mutual TLS) is checked for every call, health checks included, by the TLS
handshake itself.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import threading

import grpc

log = logging.getLogger("bridge_server.security")

HEALTH_METHODS = ("/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch")
MIN_TOKEN_CHARS = 16


class SecurityConfigError(ValueError):
    """A TLS file or token file that cannot be used, or a bind the policy refuses; the message says the fix."""


def read_pem(path: str, flag: str, marker: str) -> bytes:
    """A PEM file's bytes; a clear error naming the flag when it is missing, unreadable or not that PEM."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise SecurityConfigError(f"cannot read {flag} {path}: {exc.strerror or exc}") from None
    if f"-----BEGIN {marker}".encode() not in data and not (
            marker == "PRIVATE KEY" and b"PRIVATE KEY-----" in data):
        raise SecurityConfigError(f"{flag} {path} holds no PEM '{marker}' block; give a PEM file "
                                  "(docs/security.md shows how to make one with openssl)")
    return data


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses; any other name or address (0.0.0.0, [::]) is not."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_tokens(text: str, path: str) -> list[str]:
    """One token per line; blank lines and lines starting with # are skipped. Errors name the line, never the token."""
    tokens = []
    for n, line in enumerate(text.splitlines(), 1):
        tok = line.strip()
        if not tok or tok.startswith("#"):
            continue
        if any(c.isspace() for c in tok):
            raise SecurityConfigError(f"token file {path} line {n}: a token may not contain spaces")
        if len(tok) < MIN_TOKEN_CHARS:
            raise SecurityConfigError(f"token file {path} line {n}: a token must have at least {MIN_TOKEN_CHARS} "
                                      "characters; make one with `openssl rand -hex 32`")
        tokens.append(tok)
    return tokens


class TokenStore:
    """The accepted bearer tokens, kept as SHA-256 digests (compared in constant time); reloadable from the file."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._digests: list[bytes] = []
        self.load()
        if not self._digests:
            raise SecurityConfigError(f"--auth-token-file {path} holds no token; put one token per line "
                                      "(make one with `openssl rand -hex 32`)")

    def load(self) -> int:
        try:
            with open(self.path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise SecurityConfigError(f"cannot read --auth-token-file {self.path}: "
                                      f"{getattr(exc, 'strerror', None) or exc}") from None
        digests = [hashlib.sha256(t.encode()).digest() for t in parse_tokens(text, self.path)]
        with self._lock:
            self._digests = digests
        try:
            if os.stat(self.path).st_mode & 0o077:
                log.warning("the token file can be read by other users of this machine; chmod 600 it",
                            extra={"path": self.path})
        except OSError:
            pass
        return len(digests)

    def reload(self) -> None:
        """SIGHUP: read the file again. A file that cannot be read or parsed keeps the tokens in force."""
        try:
            n = self.load()
        except SecurityConfigError as exc:
            log.error("auth tokens not reloaded; the previous tokens stay in force", extra={"reason": str(exc)})
            return
        if n:
            log.info("auth tokens reloaded", extra={"tokens": n})
        else:
            log.warning("auth tokens reloaded: the file holds no token, so every call is refused",
                        extra={"tokens": 0})

    def accepts(self, token: str) -> bool:
        given = hashlib.sha256(token.encode()).digest()
        with self._lock:
            digests = self._digests
        ok = False
        for d in digests:  # no early exit: the time taken does not say which token (or how many) matched
            ok |= hmac.compare_digest(given, d)
        return ok


def _bearer(metadata) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


def _refusal(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that ends the call with UNAUTHENTICATED."""
    async def unary(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def streaming(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - makes this an async generator, as a server-streaming handler must be

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming)
    return grpc.unary_unary_rpc_method_handler(unary)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Lets a call through when its `authorization: Bearer <token>` metadata holds an accepted token."""

    def __init__(self, store: TokenStore):
        self.store = store

    async def intercept_service(self, continuation, details):
        method = details.method
        if method in HEALTH_METHODS:
            return await continuation(details)
        token = _bearer(details.invocation_metadata)
        if token and self.store.accepts(token):
            return await continuation(details)
        handler = await continuation(details)
        if handler is None:  # an unknown method stays UNIMPLEMENTED, but only for a caller with a token
            handler = grpc.unary_unary_rpc_method_handler(None)
        if token is None:
            why = ("no bearer token: send the metadata 'authorization: Bearer <token>' (CLI: --token-file or "
                   "AVATAR_BRIDGE_TOKEN_FILE; docs/security.md)")
        elif token == "":
            why = "the authorization metadata is not 'Bearer <token>'"
        else:
            why = "the bearer token is not accepted by this server"
        log.warning("call refused: unauthenticated", extra={"method": method, "reason": why.split(":")[0]})
        return _refusal(handler, why)


class ServerSecurity:
    """What `serve` needs: the port credentials (None = plaintext) and the server interceptors."""

    def __init__(self, credentials: grpc.ServerCredentials | None, tokens: TokenStore | None):
        self.credentials = credentials
        self.tokens = tokens

    @property
    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [TokenAuthInterceptor(self.tokens)] if self.tokens else []

    def describe(self) -> str:
        parts = ["plaintext" if self.credentials is None else "tls"]
        if self.tokens:
            parts.append("bearer tokens")
        return " + ".join(parts)

    @classmethod
    def from_config(cls, cfg) -> "ServerSecurity":
        """Reads the TLS and token files and applies the bind rule; raises SecurityConfigError on any problem."""
        if bool(cfg.tls_cert) != bool(cfg.tls_key):
            raise SecurityConfigError("--tls-cert and --tls-key go together: give the server certificate (PEM) "
                                      "and its private key (PEM)")
        if cfg.tls_client_ca and not cfg.tls_cert:
            raise SecurityConfigError("--tls-client-ca (mutual TLS) needs server TLS too: add --tls-cert and "
                                      "--tls-key")
        creds = None
        if cfg.tls_cert:
            cert = read_pem(cfg.tls_cert, "--tls-cert", "CERTIFICATE")
            key = read_pem(cfg.tls_key, "--tls-key", "PRIVATE KEY")
            client_ca = read_pem(cfg.tls_client_ca, "--tls-client-ca", "CERTIFICATE") if cfg.tls_client_ca else None
            try:
                creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca,
                                                    require_client_auth=client_ca is not None)
            except Exception as exc:  # grpc raises several types for bad PEM; all mean the same to the user
                raise SecurityConfigError(f"--tls-cert/--tls-key cannot be used: {exc}") from None
        tokens = TokenStore(cfg.auth_token_file) if cfg.auth_token_file else None
        if not is_loopback(cfg.host) and creds is None and tokens is None and not cfg.insecure:
            raise SecurityConfigError(
                f"refusing to serve {cfg.host}:{cfg.port} in plaintext without authentication: any machine that "
                "reaches this address could drive the server and read its streams. Give --tls-cert FILE --tls-key "
                "FILE (add --tls-client-ca FILE for mutual TLS) and/or --auth-token-file FILE (docs/security.md); "
                "or add --insecure if this network is trusted; or bind --host 127.0.0.1")
        if not is_loopback(cfg.host) and creds is None:
            log.warning("serving a non-loopback address in plaintext: calls and tokens can be read on the network",
                        extra={"host": cfg.host, "tokens": tokens is not None, "insecure": cfg.insecure})
        return cls(creds, tokens)


def server_security_or_exit(cfg) -> ServerSecurity:
    """For `serve`: the security settings, or one line on stderr and exit code 2 (before any worker starts)."""
    import sys

    try:
        return ServerSecurity.from_config(cfg)
    except SecurityConfigError as exc:
        print(f"avatar-bridge serve: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

"""Transport security: TLS, mutual TLS, bearer tokens (SIGHUP reload), the non-loopback bind rule, /metrics on
loopback, the CLI clients' --tls-ca / --token-file (and environment variables), and failing fast with no server.
Certificates come from a CA made at test time (tests/tls_certs.py); every call is real gRPC on loopback."""
from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from avatarbridge.v1 import bridge_pb2 as pb
from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc
from bridge_server.client import ChannelSecurity, open_channel
from tests.conftest import ROOT, Server, assert_still_serving
from tests.tls_certs import Pki, make_pki

TOKEN_A = "tokA-" + "a1b2c3d4e5f6a7b8c9d0"
TOKEN_B = "tokB-" + "0f9e8d7c6b5a4f3e2d1c"
WRONG = "nope-" + "00000000000000000000"
HELLO = ROOT / "examples" / "hello.wav"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(pki, tmp_path_factory):
    """TLS + bearer tokens (TOKEN_A), debug logging so the log test sees everything the server could log."""
    tmp = tmp_path_factory.mktemp("tls_server")
    tokens = tmp / "tokens"
    tokens.write_text(f"# team tokens\n{TOKEN_A}\n\n")
    srv = Server(tmp, workers=1, extra=["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
                                        "--auth-token-file", str(tokens), "--log-level", "debug"])
    yield srv
    srv.stop()


def _caps(target: str, security: ChannelSecurity | None = None, metadata=()) -> pb.Capabilities:
    with open_channel(target, security) as ch:
        return pb_grpc.AvatarBridgeStub(ch).GetCapabilities(pb.GetCapabilitiesRequest(), timeout=15,
                                                            metadata=metadata)


def _code(fn) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as ei:
        fn()
    return ei.value.code(), ei.value.details() or ""


def _tls(pki: Pki, token: str = "", **kw) -> ChannelSecurity:
    return ChannelSecurity(tls_ca=pki.ca.read_bytes(), token=token, **kw)


def _cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AVATAR_BRIDGE_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "bridge_server.cli", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def _wait_log(srv: Server, needle: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while srv.logs().count(needle) < count:
        assert time.monotonic() < deadline, f"server log never showed {needle!r} x{count}:\n{srv.logs()}"
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------- server TLS + tokens
def test_tls_with_token_serves_and_checks_the_certificate(tls_server, pki):
    assert _caps(tls_server.target, _tls(pki, TOKEN_A)).server_version
    # A client trusting another CA refuses the server's certificate; a plaintext client cannot talk to it.
    code, details = _code(lambda: _caps(tls_server.target, ChannelSecurity(tls_ca=pki.other_ca.read_bytes(),
                                                                           token=TOKEN_A)))
    assert code == grpc.StatusCode.UNAVAILABLE and "handshake" in details.lower()
    code, _ = _code(lambda: _caps(tls_server.target, ChannelSecurity(token=TOKEN_A)))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_missing_wrong_or_malformed_token_is_unauthenticated(tls_server, pki):
    code, details = _code(lambda: _caps(tls_server.target, _tls(pki)))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "no bearer token" in details and "--token-file" in details
    code, details = _code(lambda: _caps(tls_server.target, _tls(pki, WRONG)))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "not accepted" in details
    code, details = _code(lambda: _caps(tls_server.target, _tls(pki), metadata=[("authorization", f"Basic {TOKEN_A}")]))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "Bearer" in details
    # Streaming RPCs are refused the same way, before any audio is read.
    with open_channel(tls_server.target, _tls(pki, WRONG)) as ch:
        stub = pb_grpc.AvatarBridgeStub(ch)
        hdr = pb.ExpressionRequest(header=pb.StreamHeader(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate=16000,
                                                          channels=1, fps=30))
        code, _ = _code(lambda: list(stub.StreamExpression(iter([hdr]), timeout=15)))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        code, _ = _code(lambda: list(stub.Speak(iter([pb.SpeakRequest(start=pb.SpeakStart(text="hi"))]), timeout=15)))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    # The server goes on serving a caller with a token.
    with open_channel(tls_server.target, _tls(pki, TOKEN_A)) as ch:
        stub = pb_grpc.AvatarBridgeStub(ch)
        anim = list(stub.AnimateClip(pb.AnimateClipRequest(audio_file=HELLO.read_bytes(), fps=30), timeout=60))
        assert any(r.WhichOneof("msg") == "frames" for r in anim)


def test_health_needs_no_token_but_reflection_does(tls_server, pki):
    with open_channel(tls_server.target, _tls(pki)) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=15)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        req = reflection_pb2.ServerReflectionRequest(list_services="")
        code, _ = _code(lambda: list(refl.ServerReflectionInfo(iter([req]), timeout=15)))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    with open_channel(tls_server.target, _tls(pki, TOKEN_A)) as ch:
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        names = [s.name for r in refl.ServerReflectionInfo(iter([req]), timeout=15)
                 for s in r.list_services_response.service]
        assert "avatarbridge.v1.AvatarBridge" in names


def test_cli_clients_take_tls_ca_and_token_by_flag_and_by_environment(tls_server, pki, tmp_path):
    tok = tmp_path / "token"
    tok.write_text(TOKEN_A + "\n")
    r = _cli("capabilities", "--server", tls_server.target, "--tls-ca", str(pki.ca), "--token-file", str(tok))
    assert r.returncode == 0, r.stderr
    assert '"serverVersion"' in r.stdout
    out = tmp_path / "frames.json"
    r = _cli("animate", str(HELLO), "--out", str(out), "--server", tls_server.target,
             env={"AVATAR_BRIDGE_TLS_CA": str(pki.ca), "AVATAR_BRIDGE_TOKEN_FILE": str(tok)})
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0 and "frames at 30 fps" in r.stdout
    # A flag wins over its environment variable.
    bad = tmp_path / "bad-token"
    bad.write_text(WRONG)
    r = _cli("capabilities", "--server", tls_server.target, "--token-file", str(tok),
             env={"AVATAR_BRIDGE_TLS_CA": str(pki.ca), "AVATAR_BRIDGE_TOKEN_FILE": str(bad)})
    assert r.returncode == 0, r.stderr
    # Without the token / without the CA: one line that says why, no traceback.
    r = _cli("capabilities", "--server", tls_server.target, "--tls-ca", str(pki.ca))
    assert r.returncode == 1 and "UNAUTHENTICATED" in r.stderr and "Traceback" not in r.stderr
    r = _cli("capabilities", "--server", tls_server.target, "--token-file", str(tok), "--connect-timeout", "2")
    assert r.returncode == 1 and "--tls-ca" in r.stderr and "Traceback" not in r.stderr
    r = _cli("capabilities", "--server", tls_server.target, "--tls-ca", str(pki.other_ca), "--token-file", str(tok),
             "--connect-timeout", "2")
    assert r.returncode == 1 and "TLS handshake failed" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = _cli("capabilities", "--server", tls_server.target, "--tls-ca", str(tmp_path / "missing.pem"))
    assert r.returncode == 1 and "cannot read --tls-ca" in r.stderr and "Traceback" not in r.stderr
    r = _cli("capabilities", "--tls-ca", str(pki.ca))
    assert r.returncode == 1 and "--tls-ca needs --server" in r.stderr


# ---------------------------------------------------------------------------------------------- mutual TLS
def test_mutual_tls_requires_a_client_certificate(pki, tmp_path):
    srv = Server(tmp_path, workers=1, extra=["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
                                             "--tls-client-ca", str(pki.ca)])
    try:
        with_cert = _tls(pki, client_cert=pki.client_cert.read_bytes(), client_key=pki.client_key.read_bytes())
        assert _caps(srv.target, with_cert).server_version
        code, _ = _code(lambda: _caps(srv.target, _tls(pki)))
        assert code == grpc.StatusCode.UNAVAILABLE
        r = _cli("capabilities", "--server", srv.target, "--tls-ca", str(pki.ca),
                 "--tls-client-cert", str(pki.client_cert), "--tls-client-key", str(pki.client_key))
        assert r.returncode == 0, r.stderr
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------- SIGHUP, logs
def test_sighup_reloads_tokens_and_no_token_reaches_the_log(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN_A + "\n")
    tokens.chmod(0o644)  # readable by others: the server warns
    srv = Server(tmp_path, workers=1, extra=["--auth-token-file", str(tokens), "--log-level", "debug"])
    try:
        a, b = ChannelSecurity(token=TOKEN_A), ChannelSecurity(token=TOKEN_B)
        assert _caps(srv.target, a).server_version
        assert _code(lambda: _caps(srv.target, b))[0] == grpc.StatusCode.UNAUTHENTICATED

        tokens.write_text(f"{TOKEN_A}\n{TOKEN_B}\n")  # add B
        srv.proc.send_signal(signal.SIGHUP)
        _wait_log(srv, "auth tokens reloaded", 1)
        assert _caps(srv.target, a).server_version and _caps(srv.target, b).server_version

        tokens.write_text(f"{TOKEN_B}\n")  # remove A
        srv.proc.send_signal(signal.SIGHUP)
        _wait_log(srv, "auth tokens reloaded", 2)
        assert _code(lambda: _caps(srv.target, a))[0] == grpc.StatusCode.UNAUTHENTICATED
        assert _caps(srv.target, b).server_version

        tokens.write_text("short\n")  # a file that cannot be used keeps the tokens in force
        srv.proc.send_signal(signal.SIGHUP)
        _wait_log(srv, "auth tokens not reloaded", 1)
        assert _caps(srv.target, b).server_version
        assert_still_serving_with(srv, b)

        log = srv.logs()
        assert "call refused: unauthenticated" in log
        assert "the token file can be read by other users of this machine; chmod 600 it" in log
        for secret in (TOKEN_A, TOKEN_B, "short"):
            assert secret not in log, f"a token reached the server log: {secret}"
    finally:
        srv.stop()


def assert_still_serving_with(srv: Server, security: ChannelSecurity) -> None:
    srv.channel.close()
    srv.channel = open_channel(srv.target, security)
    srv.stub = pb_grpc.AvatarBridgeStub(srv.channel)
    assert_still_serving(srv)


def test_tls_server_log_holds_no_token(tls_server, pki):
    for tok in (TOKEN_A, WRONG):
        try:
            _caps(tls_server.target, _tls(pki, tok))
        except grpc.RpcError:
            pass
    _wait_log(tls_server, "call refused: unauthenticated", 1)
    log = tls_server.logs()
    assert TOKEN_A not in log and WRONG not in log


# ---------------------------------------------------------------------------------------------- bind rule, /metrics
def test_non_loopback_bind_without_tls_or_token_refuses_to_start(tmp_path):
    r = _cli("serve", "--host", "0.0.0.0", "--port", "0", "--metrics-port", "-1", "--workers", "1", timeout=60)
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip()
    assert line.startswith("avatar-bridge serve: refusing to serve 0.0.0.0:0 in plaintext without authentication")
    assert "--tls-cert" in line and "--auth-token-file" in line and "--insecure" in line
    assert "Traceback" not in r.stderr
    r = _cli("serve", "--host", "0.0.0.0", "--port", "0", env={"AVATAR_BRIDGE_HOST": "0.0.0.0"}, timeout=60)
    assert r.returncode == 2 and "refusing to serve" in r.stderr


def _listening(port: int) -> set[str]:
    """Local addresses listening on TCP `port` (from /proc/net/tcp and tcp6; Linux)."""
    import ipaddress

    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = pathlib.Path(table)
        for line in (path.read_text().splitlines()[1:] if path.exists() else []):
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:  # 0A = LISTEN
                raw = bytes.fromhex(addr)
                # the kernel prints each 32-bit word in host (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                out.add(str(ipaddress.ip_address(raw)))
    return out


def test_insecure_allows_non_loopback_and_metrics_stay_on_loopback(tmp_path):
    srv = Server(tmp_path, workers=1, extra=["--host", "0.0.0.0", "--insecure"])
    try:
        assert _caps(srv.target).server_version
        assert _listening(srv.port) & {"0.0.0.0", "::"}, _listening(srv.port)  # every interface
        assert _listening(srv.metrics_port) == {"127.0.0.1"}
        assert "avatar_bridge_live_streams" in srv.metrics()
        assert "serving a non-loopback address in plaintext" in srv.logs()
    finally:
        srv.stop()


def test_non_loopback_bind_with_a_token_starts(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN_A + "\n")
    srv = Server(tmp_path, workers=1, extra=["--host", "0.0.0.0", "--auth-token-file", str(tokens)])
    try:
        assert _caps(srv.target, ChannelSecurity(token=TOKEN_A)).server_version
    finally:
        srv.stop()


@pytest.mark.parametrize("args, message", [
    (["--tls-cert", "{cert}"], "--tls-cert and --tls-key go together"),
    (["--tls-cert", "{missing}", "--tls-key", "{key}"], "cannot read --tls-cert"),
    (["--tls-cert", "{key}", "--tls-key", "{key}"], "holds no PEM 'CERTIFICATE' block"),
    (["--tls-client-ca", "{ca}"], "needs server TLS too"),
    (["--auth-token-file", "{empty}"], "holds no token"),
    (["--auth-token-file", "{short}"], "line 2: a token must have at least 16 characters"),
])
def test_unusable_security_settings_are_refused_before_start(pki, tmp_path, args, message):
    (tmp_path / "empty").write_text("# nothing yet\n")
    (tmp_path / "short").write_text(f"{TOKEN_A}\nabc123\n")
    files = {"cert": pki.server_cert, "key": pki.server_key, "ca": pki.ca, "missing": tmp_path / "nope.pem",
             "empty": tmp_path / "empty", "short": tmp_path / "short"}
    r = _cli("serve", "--port", "0", "--metrics-port", "-1", "--workers", "1",
             *[a.format(**{k: str(v) for k, v in files.items()}) for a in args], timeout=60)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert "abc123" not in r.stderr


# ---------------------------------------------------------------------------------------------- fail fast
@pytest.fixture
def closed_port():
    """A loopback port nothing listens on: bound but not listening (connections are refused), and held so that
    no other process can take it during the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.mark.parametrize("command", [
    ["capabilities"],
    ["animate", str(HELLO), "--out", "{tmp}/f.json"],
    ["animate", str(HELLO), "--out", "{tmp}/f.json", "--stream"],
    ["speak", "hello", "--out", "{tmp}/f.json"],
    ["speak", "--list-voices"],
    ["capture", str(HELLO), "--out", "{tmp}/f.json"],
])
def test_cli_client_with_no_server_fails_fast(tmp_path, closed_port, command):
    port = closed_port
    began = time.monotonic()
    r = _cli(*[c.format(tmp=tmp_path) for c in command], "--server", f"127.0.0.1:{port}", "--connect-timeout", "2",
             timeout=60)
    took = time.monotonic() - began
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f"avatar-bridge {command[0]}: no server at 127.0.0.1:{port}"), r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert took < 30, f"took {took:.1f} s"  # the connect deadline is 2 s; the rest is interpreter start-up


def test_default_connect_timeout_fails_within_seconds(closed_port):
    began = time.monotonic()
    r = _cli("capabilities", "--server", f"127.0.0.1:{closed_port}", timeout=60)
    assert r.returncode == 1 and f"no server at 127.0.0.1:{closed_port}" in r.stderr, r.stderr
    assert "within 5 s" in r.stderr and time.monotonic() - began < 30

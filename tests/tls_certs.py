"""A throw-away PKI made at test time with the openssl command: a CA, a server certificate for localhost /
127.0.0.1, a client certificate (mutual TLS), and a second CA that signed neither (the wrong CA).
The one place tests and bench/tls_bench.py get certificates from; docs/security.md shows the same commands."""
from __future__ import annotations

import pathlib
import shutil
import subprocess
from dataclasses import dataclass


@dataclass
class Pki:
    ca: pathlib.Path
    server_cert: pathlib.Path
    server_key: pathlib.Path
    client_cert: pathlib.Path
    client_key: pathlib.Path
    other_ca: pathlib.Path  # a CA that signed nothing here: a client trusting only it must refuse the server


def _openssl(*args: str, cwd: pathlib.Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(d: pathlib.Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=d)


def _leaf(d: pathlib.Path, name: str, ca: str, ext: str) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    (d / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)


def make_pki(d: pathlib.Path) -> Pki:
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is needed to make test certificates (Debian: openssl)")
    d.mkdir(parents=True, exist_ok=True)
    _ca(d, "test-ca")
    _ca(d, "other-ca")
    _leaf(d, "server", "test-ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _leaf(d, "client", "test-ca", "extendedKeyUsage=clientAuth\n")
    return Pki(d / "test-ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key",
               d / "other-ca.pem")

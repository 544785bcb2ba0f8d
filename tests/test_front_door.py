"""What a new user meets first: install, help, and the CLI's answers to common mistakes.

Every CLI test runs the real `avatar-bridge` CLI as a subprocess and checks the exit code, the message and that
no Python traceback was printed."""
from __future__ import annotations

import io
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import zipfile
from dataclasses import fields

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT

LINE = ROOT / "examples" / "line.wav"  # 6.3 s


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge_server.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def no_traceback(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stderr + r.stdout, r.stderr


def fake_missing(tmp: pathlib.Path, *modules: str) -> dict:
    """Environment in which importing these modules fails as if they were not installed."""
    for name in modules:
        (tmp / name).mkdir(parents=True, exist_ok=True)
        (tmp / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name='{name}')\n")
    return {"PYTHONPATH": os.pathsep.join([str(tmp), str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def frames_json(server, tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("front") / "line.json"
    r = cli("animate", str(LINE), "--server", server.target, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


# -- install -------------------------------------------------------------------------------------------------

def test_one_editable_install_maps_the_generated_stubs(tmp_path):
    """A clean clone (no generated avatarbridge/) built once as an editable wheel, as `pip install -e .` does:
    its import map must already hold avatarbridge (it used to need a second install)."""
    src = tmp_path / "clone"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("proto", "bridge_server", "engine"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    assert not (src / "avatarbridge").exists()
    out = tmp_path / "wheel"
    out.mkdir()
    r = subprocess.run([sys.executable, "-c", f"from setuptools import build_meta as b; print(b.build_editable({str(out)!r}))"],
                       cwd=src, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    wheel = out / r.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as z:
        finder = [n for n in z.namelist() if n.endswith("_finder.py")]
        assert finder, z.namelist()
        mapping = z.read(finder[0]).decode()
        entry_points = z.read(next(n for n in z.namelist() if n.endswith("entry_points.txt"))).decode()
    assert f"'avatarbridge': {str(src / 'avatarbridge')!r}" in mapping, mapping[:2000]
    assert (src / "avatarbridge" / "v1" / "bridge_pb2_grpc.py").is_file()
    assert "avatar-bridge = bridge_server.cli:main" in entry_points


# -- help ------------------------------------------------------------------------------------------------------

def test_top_level_help_lists_every_command():
    r = cli("--help")
    assert r.returncode == 0
    import argparse

    from bridge_server.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = set(sub.choices)
    assert {c.dest for c in sub._choices_actions} == commands, "a command without a help line"
    assert len(commands) >= 10
    text = " ".join(r.stdout.split())
    for c in commands:
        assert f" {c} " in text, f"{c} missing from avatar-bridge --help"
    assert "serve, animate, capabilities, render, capture, train-expression, eval-expression." not in text


def test_serve_help_describes_every_flag():
    from bridge_server.config import ServerConfig
    from bridge_server.settings_help import SETTING_HELP

    r = cli("serve", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    missing = [f.name for f in fields(ServerConfig) if f.name != "outputs" and f.name not in SETTING_HELP]
    assert not missing, f"serve settings without a description in bridge_server/settings_help.py: {missing}"
    for name, what in SETTING_HELP.items():
        assert what in text, f"--{name.replace('_', '-')}: its description is not in serve --help"


# -- mistakes and missing pieces --------------------------------------------------------------------------------

def test_render_without_the_render_extra_says_what_to_install(tmp_path, frames_json):
    avatar = tmp_path / "avatar.glb"
    avatar.write_bytes(b"glTF" + b"\0" * 60)
    r = cli("render", str(frames_json), "--avatar", str(avatar), "--out", str(tmp_path / "p.mp4"),
            env=fake_missing(tmp_path / "fake", "pygltflib", "moderngl", "meshopt"))
    no_traceback(r)
    assert r.returncode == 2
    assert "not installed" in r.stderr and "pip install 'avatar-bridge[render]'" in r.stderr, r.stderr


def test_generate_without_torch_says_what_to_install(tmp_path):
    r = cli("generate", "--ckpt_dir", str(tmp_path), "--image", str(tmp_path / "p.png"), "--audio", str(LINE),
            env=fake_missing(tmp_path / "fake", "torch"))
    no_traceback(r)
    assert r.returncode == 2
    assert "'torch', which is not installed" in r.stderr and "pip install torch" in r.stderr, r.stderr


def test_busy_metrics_port_names_the_flag(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = cli("serve", "--port", "0", "--workers", "1", "--metrics-port", str(port), "--log-level", "warning")
    no_traceback(r)
    assert r.returncode != 0
    assert f"cannot serve metrics on 127.0.0.1:{port}" in r.stderr and "--metrics-port" in r.stderr, r.stderr


def test_unknown_out_extension_is_refused_before_any_work(tmp_path):
    for cmd in (["animate", str(LINE)], ["capture", str(tmp_path / "v.mp4")]):
        out = tmp_path / "frames.txt"
        r = cli(*cmd, "--out", str(out))
        no_traceback(r)
        assert r.returncode == 2
        assert "'.txt'" in r.stderr and ".json or .csv" in r.stderr, r.stderr
        assert not out.exists()


def test_text_file_as_audio_names_no_python_object(server, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not audio\n" * 50)
    for mode in ([], ["--stream"]):  # decoded by the server (AnimateClip) or by the CLI (a stream)
        r = cli("animate", str(text), "--server", server.target, "--out", str(tmp_path / "x.json"), *mode)
        no_traceback(r)
        assert r.returncode == 1
        assert "is not a decodable audio file" in r.stderr, r.stderr
        assert "_io." not in r.stderr and " object at 0x" not in r.stderr, r.stderr


def test_models_list_fails_when_a_model_is_missing(tmp_path):
    env = {"AVATAR_BRIDGE_MODELS_DIR": str(tmp_path), "AVATAR_BRIDGE_FACE_LANDMARKER": ""}
    r = cli("models", "list", env=env)
    no_traceback(r)
    assert r.returncode == 1
    assert "face_landmarker: missing" in r.stdout, r.stdout


def test_models_fetch_offline_says_how_to_place_the_file(tmp_path):
    with socket.socket() as s:  # a port nothing listens on: the download fails as it does offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"AVATAR_BRIDGE_MODELS_DIR": str(tmp_path)}
    r = cli("models", "fetch", "--url", f"http://127.0.0.1:{port}/face_landmarker.task", env=env)
    no_traceback(r)
    assert r.returncode == 1
    assert "offline" in r.stderr and str(tmp_path / "face_landmarker.task") in r.stderr, r.stderr
    assert "AVATAR_BRIDGE_MODELS_DIR" in r.stderr and "models verify" in r.stderr, r.stderr
    assert "urlopen error" not in r.stderr, r.stderr


# -- streaming from the CLI -------------------------------------------------------------------------------------

def test_stream_is_paced_only_with_realtime(server, tmp_path):
    x, sr = sf.read(str(LINE), dtype="float32")
    clip = tmp_path / "two_seconds.wav"
    sf.write(clip, x[:2 * sr], sr)
    r = cli("animate", str(clip), "--server", server.target, "--stream", "--realtime", "--out", str(tmp_path / "a.json"))
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    took = float(r.stdout.split("streamed in ")[1].split(" s")[0])
    assert "(paced at real time)" in r.stdout and took >= 1.9, r.stdout  # 2 s of audio cannot stream faster
    r = cli("animate", str(clip), "--server", server.target, "--stream", "--out", str(tmp_path / "b.json"))
    assert r.returncode == 0 and "(not paced)" in r.stdout, r.stdout
    assert "as fast as the server takes them unless --realtime" in " ".join(cli("animate", "--help").stdout.split())
    r = cli("animate", str(clip), "--realtime", "--out", str(tmp_path / "c.json"))
    assert r.returncode == 2 and "add --stream" in r.stderr, r.stderr


def test_sigterm_writes_the_frames_received_and_says_partial(server, tmp_path):
    out = tmp_path / "partial.json"
    proc = subprocess.Popen([sys.executable, "-m", "bridge_server.cli", "animate", str(LINE), "--server",
                             server.target, "--stream", "--realtime", "--out", str(out)],
                            cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        seen = []
        while not (seen and seen[-1].startswith("receiving frames")):  # printed when the first frames arrived
            line = proc.stderr.readline()
            assert line, f"the CLI ended before any frames arrived: {''.join(seen)}"
            seen.append(line)
        proc.send_signal(signal.SIGTERM)
        stdout, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in rest, rest
    assert proc.returncode == 143, (proc.returncode, rest)
    assert "PARTIAL" in rest and str(out) in rest, rest
    doc = json.loads(out.read_text())
    assert doc["partial"] is True and doc["status"] is None
    n = len(doc["frames"])
    assert 0 < n < 6.3 * 30, n  # some frames, not the whole clip
    assert f"the {n} frames received so far" in rest


# -- the AnimateClip decode cap ---------------------------------------------------------------------------------

def test_clip_decode_stops_at_the_servers_limit():
    """The worker decodes a clip only a little past max_audio_seconds (it used to decode up to an hour first)."""
    from engine.audio import AudioError
    from engine.worker.session import ClipSession
    from engine.worker.specs import ClipSpec

    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", 8000, 1, format="FLAC") as f:  # 62 min of silence, 92 kB
        for _ in range(62):
            f.write(np.zeros(8000 * 60, np.float32))
    with pytest.raises(AudioError) as err:
        ClipSession(None, ClipSpec(fps=30, max_audio_seconds=2.0), buf.getvalue())
    assert "over the server's limit of 2 s (max_audio_seconds)" in str(err.value)
    assert "3600" not in str(err.value)


def test_unity_readme_install_is_real():
    text = (ROOT / "unity_plugin" / "README.md").read_text()
    assert "#v0.1.0" not in text and "<your git host>" not in text
    assert "?path=/unity_plugin" in text and "Add package from disk" in text

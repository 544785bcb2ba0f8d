"""`avatar-bridge generate-batch --ray ADDRESS`: one Ray task per profile, each holding --gpus-per-job GPUs.

The driver (this process) validates every profile first (JSON, files, knobs, and the portrait and speech
decode); a profile that fails is reported at once and the others go on. Valid profiles become tasks that carry
their inputs as bytes (no shared filesystem needed), run the same `generate_one` as the local batch on
whatever node Ray places them, and return the MP4 bytes, which the driver writes to --out-dir. A task that
fails (an exception, or its worker process or node dying) is submitted once more; a second failure is reported
with both errors. runs.jsonl gets one line per profile, as in the local batch, plus node, GPU ids and attempts.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time

ATTEMPTS = 2  # the first run and one retry


class RayBatchError(Exception):
    """The batch cannot run at all (no Ray, no cluster): one line for the user."""


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast, with the address in the message, when nothing answers there (ray.init would wait long)."""
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RayBatchError(f"--ray {address!r}: expected HOST:PORT of a Ray head node (e.g. 10.0.0.5:6379), "
                            "'auto', or ray://HOST:10001")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayBatchError(f"--ray {address}: no Ray cluster answers there ({exc.strerror or exc}); start one "
                            "with `ray start --head --port PORT` or check the address") from None


def _job_task(job: dict) -> dict:
    """Runs on a Ray worker: the engine, one generation, the MP4 back as bytes."""
    import ray

    from bridge_server.cli.video import generate_one
    from engine.video.pipeline import VideoEngine

    k = job["params"]
    eng = VideoEngine(job["ckpt_dir"], lora=k["lora"] if k["model"] == "liveavatar" else None,
                      device=job["device"], offload_model=bool(k["offload_model"]), speed=job["speed"])
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for kind in ("image", "audio"):
            paths[kind] = os.path.join(d, kind + os.path.splitext(job[kind])[1])
            with open(paths[kind], "wb") as fh:
                fh.write(job[kind + "_bytes"])
        out = os.path.join(d, "out.mp4")
        info = generate_one(eng, paths["image"], paths["audio"], job["prompt"], k, out, progress=False)
        with open(out, "rb") as fh:
            info["mp4"] = fh.read()
    info["node"] = socket.gethostname()
    info["gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]
    return info


def validate(path: str, args) -> dict:
    """A job from a profile file, or an InputError/ValueError/OSError naming what is wrong with it."""
    from bridge_server.cli.video import resolve
    from engine.video.inputs import check_image, decode_image, load_audio

    with open(path) as fh:
        prof = json.load(fh)
    if not isinstance(prof, dict) or not prof.get("image") or not prof.get("audio"):
        raise ValueError("a profile is a JSON object with at least \"image\" and \"audio\" (paths)")
    name = prof.get("name") or os.path.splitext(os.path.basename(path))[0]
    base = os.path.dirname(os.path.abspath(path))
    rel = lambda f: f if os.path.isabs(f) else os.path.join(base, f)  # noqa: E731
    job = {"name": name, "profile": path, "image": rel(prof["image"]), "audio": rel(prof["audio"]),
           "prompt": prof.get("prompt", ""), "params": resolve(args, prof.get("overrides"))}
    for kind in ("image", "audio"):
        with open(job[kind], "rb") as fh:
            job[kind + "_bytes"] = fh.read()
    check_image(decode_image(job["image_bytes"]))  # the same checks the task makes, before a GPU is taken
    load_audio(job["audio_bytes"])
    return job


def _error_text(exc: BaseException) -> str:
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None:
        exc = exc.cause
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def run_batch_on_ray(args, files: list[str]) -> int:
    try:
        import ray
    except ImportError:
        raise RayBatchError("--ray needs Ray on this machine and the cluster's nodes: "
                            "pip install 'avatar-bridge[ray]'") from None
    from bridge_server.cli.video import speed_options

    check_address(args.ray)
    os.makedirs(args.out_dir, exist_ok=True)
    log_path = os.path.join(args.out_dir, "runs.jsonl")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    records: list[dict] = []
    jobs = []
    for path in files:
        try:
            job = validate(path, args)
        except Exception as exc:  # one bad profile is reported and the batch goes on
            name = os.path.splitext(os.path.basename(path))[0]
            field = f"{exc.field}: " if getattr(exc, "field", None) else ""
            records.append({"name": name, "profile": path, "status": "error", "attempts": 0,
                            "error": f"invalid profile: {field}{type(exc).__name__}: {exc}", "started": started})
            print(f"avatar-bridge generate-batch: {name}: invalid profile: {field}{exc}", file=sys.stderr)
            continue
        job.update(ckpt_dir=os.path.abspath(args.ckpt_dir), device=args.device, speed=speed_options(args))
        jobs.append(job)

    try:
        ray.init(address=args.ray, log_to_driver=False, logging_level="ERROR")
    except Exception as exc:  # ConnectionError, RuntimeError, ...: Ray's own words, in one line
        raise RayBatchError(f"--ray {args.ray}: cannot join the Ray cluster: {_error_text(exc)}") from None
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        if args.gpus_per_job > gpus:
            raise RayBatchError(f"--gpus-per-job {args.gpus_per_job:g}: the cluster at {args.ray} has {gpus:g} GPUs "
                                "in all, so no job could ever start")
        task = ray.remote(num_gpus=args.gpus_per_job, max_retries=0)(_job_task)
        pending = {}
        for job in jobs:
            pending[task.remote(job)] = (job, 1, [])
        print(f"{len(jobs)} jobs on the Ray cluster at {args.ray} ({gpus:g} GPUs, {args.gpus_per_job:g} per job)",
              flush=True)
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job, attempt, errors = pending.pop(ready[0])
            record = {k: job[k] for k in ("name", "profile", "image", "audio", "prompt", "params")}
            try:
                info = ray.get(ready[0])
            except Exception as exc:
                errors = [*errors, _error_text(exc)]
                if attempt < ATTEMPTS:
                    print(f"{job['name']}: attempt {attempt} failed ({errors[-1]}); retrying", flush=True)
                    pending[task.remote(job)] = (job, attempt + 1, errors)
                    continue
                record.update(status="error", attempts=attempt, error=" | then: ".join(errors))
                print(f"avatar-bridge generate-batch: {job['name']}: failed {attempt} times: {record['error']}",
                      file=sys.stderr)
            else:
                out = os.path.join(args.out_dir, f"{job['name']}.mp4")
                with open(out, "wb") as fh:
                    fh.write(info.pop("mp4"))
                record.update(info, status="ok", attempts=attempt, out=out,
                              **({"earlier_errors": errors} if errors else {}))
            done += 1
            print(f"[{done}/{len(jobs)}] {job['name']}: {record['status']}"
                  + (f", {record['frames']} frames in {record['seconds']:.1f} s on {record['node']} "
                     f"GPU {','.join(record['gpu_ids']) or '-'}" if record["status"] == "ok" else ""), flush=True)
            records.append(record)
    finally:
        ray.shutdown()
    with open(log_path, "a") as fh:
        for r in records:
            fh.write(json.dumps({**r, "params": r.get("params")}, default=str) + "\n")
    failed = sum(r["status"] != "ok" for r in records)
    print(f"{len(records) - failed}/{len(records)} runs ok; log: {log_path}")
    return 1 if failed else 0


"""What the released checkpoints are, where they live, and checks that name what is missing.

``MANIFEST`` is the data the ``avatar-bridge models fetch`` command (wired by the CLI owner)
needs: Hugging Face repo ids, the files to fetch, and sizes. The spec we work from gives no
published sha256 for these files, so ``sha256`` is None here: ``fetch`` records the hub's
LFS sha256 of every file it downloads into ``<dest>/CHECKSUMS.sha256`` and verifies local
files against it on later runs (``verify``), which pins what a machine has once fetched.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

DIT_INDEX = "diffusion_pytorch_model.safetensors.index.json"
VAE_FILE = "Wan2.1_VAE.pth"
T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
T5_TOKENIZER_DIR = "google/umt5-xxl"
WAV2VEC_DIR = "wav2vec2-large-xlsr-53-english"
LORA_FILE = "liveavatar.safetensors"


@dataclass
class ModelFiles:
    name: str
    repo_id: str
    files: list[str]  # file names or folder prefixes ending in "/"
    disk_gb: float
    note: str = ""
    sha256: dict[str, str] = field(default_factory=dict)  # none published in the spec; see module doc


MANIFEST: dict[str, ModelFiles] = {
    "s2v-14b": ModelFiles(
        "s2v-14b", "Wan-AI/Wan2.2-S2V-14B",
        ["config.json", DIT_INDEX] + [f"diffusion_pytorch_model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
        + [VAE_FILE, T5_FILE, T5_TOKENIZER_DIR + "/", WAV2VEC_DIR + "/"],
        disk_gb=49.0,
        note="DiT 32.6 GB bf16 (4 shards), VAE 0.5 GB, umT5-XXL encoder 11.4 GB, wav2vec2 1.3 GB, tokenizer"),
    "liveavatar": ModelFiles(
        "liveavatar", "Quark-Vision/Live-Avatar", [LORA_FILE], disk_gb=1.4,
        note="LoRA rank 128 / alpha 64 (896 tensors, bf16); needs s2v-14b as the base"),
}

FETCH_HINT = ("fetch the released files on a networked machine with `avatar-bridge models fetch s2v-14b` "
              "(and `liveavatar` for the LoRA), or `huggingface-cli download Wan-AI/Wan2.2-S2V-14B --local-dir DIR`")


class CheckpointError(Exception):
    """A checkpoint directory or file is missing pieces or does not match the model."""


def missing_files(ckpt_dir: str, need_text: bool = True, need_audio: bool = True) -> list[str]:
    """Relative paths the S2V checkpoint directory lacks (shards named by the index when present)."""
    if not os.path.isdir(ckpt_dir):
        return [ckpt_dir + "/ (the directory itself)"]
    out = []
    for f in ("config.json", DIT_INDEX, VAE_FILE):
        if not os.path.isfile(os.path.join(ckpt_dir, f)):
            out.append(f)
    idx = os.path.join(ckpt_dir, DIT_INDEX)
    if os.path.isfile(idx):
        shards = sorted(set(read_index(idx).values()))
        out += [s for s in shards if not os.path.isfile(os.path.join(ckpt_dir, s))]
    if need_text:
        if not os.path.isfile(os.path.join(ckpt_dir, T5_FILE)):
            out.append(T5_FILE)
        if not os.path.isdir(os.path.join(ckpt_dir, T5_TOKENIZER_DIR)):
            out.append(T5_TOKENIZER_DIR + "/")
    if need_audio and not os.path.isfile(os.path.join(ckpt_dir, WAV2VEC_DIR, "config.json")):
        out.append(WAV2VEC_DIR + "/config.json")
    return out


def read_index(path: str) -> dict[str, str]:
    """The weight_map of a safetensors index (tensor name -> shard file name in the same directory)."""
    try:
        with open(path, encoding="utf-8") as fh:
            weight_map = json.load(fh)["weight_map"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # not JSON / not UTF-8 / no weight_map
        raise CheckpointError(f"{path} is not a safetensors index ({type(exc).__name__}: {str(exc)[:200]}); "
                              f"{FETCH_HINT}") from None
    if not isinstance(weight_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v and os.path.basename(v) == v and v not in (".", "..")
            for k, v in weight_map.items()):
        raise CheckpointError(f"{path}: weight_map must map tensor names to shard file names in the same "
                              f"directory; {FETCH_HINT}")
    return weight_map


def require_files(ckpt_dir: str, **kw) -> None:
    miss = missing_files(ckpt_dir, **kw)
    if miss:
        raise CheckpointError(f"checkpoint directory {ckpt_dir} lacks: {', '.join(miss)}; {FETCH_HINT}")


def find_lora(path: str) -> str:
    if os.path.isdir(path):
        path = os.path.join(path, LORA_FILE)
    if not os.path.isfile(path):
        raise CheckpointError(f"LiveAvatar LoRA not found at {path}; fetch it with `avatar-bridge models fetch "
                              "liveavatar` (HF Quark-Vision/Live-Avatar, file liveavatar.safetensors)")
    return path


def sha256_file(path: str, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(dest: str) -> list[str]:
    """Files whose sha256 differs from CHECKSUMS.sha256 written by ``fetch`` (empty = all good)."""
    sums = os.path.join(dest, "CHECKSUMS.sha256")
    bad = []
    if not os.path.isfile(sums):
        return bad
    with open(sums) as fh:
        for line in fh:
            digest, rel = line.strip().split("  ", 1)
            p = os.path.join(dest, rel)
            if not os.path.isfile(p) or sha256_file(p) != digest:
                bad.append(rel)
    return bad


def fetch(name: str, dest: str) -> list[str]:
    """Download one manifest entry into ``dest`` with huggingface_hub (resumable, its own progress bars),
    then check each LFS file's sha256 against the hub's and append it to CHECKSUMS.sha256. Returns the
    local paths. Needs network access and ``huggingface_hub``. Not run here (no network)."""
    if name not in MANIFEST:
        raise CheckpointError(f"unknown model {name!r}; known: {', '.join(MANIFEST)}")
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError:
        raise CheckpointError("fetching needs `pip install huggingface_hub`") from None
    m = MANIFEST[name]
    patterns = [f + "*" if f.endswith("/") else f for f in m.files]
    os.makedirs(dest, exist_ok=True)
    snapshot_download(m.repo_id, local_dir=dest, allow_patterns=patterns)
    # Pin what we got: the hub's LFS sha256 per file, checked against the bytes on disk.
    info = HfApi().model_info(m.repo_id, files_metadata=True)
    lines, paths = [], []
    for sib in info.siblings or []:
        if not any(sib.rfilename == f or (f.endswith("/") and sib.rfilename.startswith(f)) for f in m.files):
            continue
        p = os.path.join(dest, sib.rfilename)
        paths.append(p)
        lfs = getattr(sib, "lfs", None)
        if lfs is not None and os.path.isfile(p):
            digest = lfs.sha256 if hasattr(lfs, "sha256") else lfs["sha256"]
            if sha256_file(p) != digest:
                raise CheckpointError(f"{p}: sha256 differs from the hub's {digest}; delete it and fetch again")
            lines.append(f"{digest}  {sib.rfilename}\n")
    with open(os.path.join(dest, "CHECKSUMS.sha256"), "a") as fh:
        fh.writelines(lines)
    return paths

"""Model files that are not in any pip wheel: where they are looked for, how they are fetched.

Lookup order for a model (first hit wins):
  1. an explicit path (server setting ``face_landmarker`` / CLI ``--model``),
  2. the environment variable named in the model's entry (``AVATAR_BRIDGE_FACE_LANDMARKER``),
  3. ``$AVATAR_BRIDGE_MODELS_DIR/<file>``, default ``~/.cache/avatar-bridge/models/<file>``.
``avatar-bridge models fetch`` downloads into (3) and checks the pinned sha256.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFile:
    name: str
    filename: str
    url: str
    sha256: str
    size: int
    env: str
    description: str


# The float16 Face Landmarker v2 bundle (face detector, 478-point mesh, 52 blendshapes,
# geometry pipeline). Size and checksum pinned from the copy checked in ../shared/data
# (the same 3,758,596 bytes that public mirrors of this URL record).
FACE_LANDMARKER = ModelFile(
    name="face_landmarker",
    filename="face_landmarker.task",
    url="https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task",
    sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    size=3758596,
    env="AVATAR_BRIDGE_FACE_LANDMARKER",
    description="MediaPipe Face Landmarker (float16): 478 landmarks, 52 blendshapes, head pose",
)
MODELS = {FACE_LANDMARKER.name: FACE_LANDMARKER}


class ModelMissing(RuntimeError):
    """A model file is absent or corrupt; the message says where it was looked for and how to fetch it."""


def models_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("AVATAR_BRIDGE_MODELS_DIR") or
                        pathlib.Path.home() / ".cache" / "avatar-bridge" / "models")


def candidates(model: ModelFile, explicit: str | None = None) -> list[tuple[str, pathlib.Path]]:
    out = []
    if explicit:
        out.append(("setting", pathlib.Path(explicit).expanduser()))
    if os.environ.get(model.env):
        out.append((f"${model.env}", pathlib.Path(os.environ[model.env]).expanduser()))
    out.append(("models dir", models_dir() / model.filename))
    return out


def sha256_of(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check(model: ModelFile, path: pathlib.Path) -> str | None:
    """None if the file is the pinned one, else what is wrong with it."""
    if not path.is_file():
        return "not found"
    size = path.stat().st_size
    if size != model.size:
        return f"{size} bytes, expected {model.size} (truncated or a different file)"
    digest = sha256_of(path)
    if digest != model.sha256:
        return f"sha256 {digest}, expected {model.sha256}"
    return None


def locate(model: ModelFile = FACE_LANDMARKER, explicit: str | None = None) -> pathlib.Path:
    """The first candidate that exists; an existing but corrupt file is an error, not skipped.
    An explicit path is authoritative: if it is wrong, say so rather than pick up another copy."""
    if explicit and not pathlib.Path(explicit).expanduser().is_file():
        raise ModelMissing(f"{model.filename}: the configured path {explicit} does not exist; fix the setting "
                           f"(face_landmarker / --model) or run `avatar-bridge models fetch {model.name}`")
    tried = []
    for source, path in candidates(model, explicit):
        if path.is_file():
            problem = check(model, path)
            if problem:
                raise ModelMissing(f"{model.filename} at {path} ({source}) is corrupt: {problem}; delete it and run "
                                   f"`avatar-bridge models fetch {model.name}`")
            return path
        tried.append(f"{path} ({source})")
    raise ModelMissing(f"{model.filename} ({model.description}) was not found; looked in: {'; '.join(tried)}. "
                       f"Run `avatar-bridge models fetch {model.name}` on a networked machine, or set "
                       f"{model.env} to the file's path")


def fetch(model: ModelFile, dest_dir: pathlib.Path | None = None, url: str | None = None) -> pathlib.Path:
    """Download to dest_dir (default: the models dir), verify size and sha256, then move into place."""
    dest_dir = dest_dir or models_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / model.filename
    if dest.is_file() and check(model, dest) is None:
        return dest
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=model.filename + ".")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url or model.url, timeout=60) as resp:
            while block := resp.read(1 << 20):
                out.write(block)
        problem = check(model, pathlib.Path(tmp))
        if problem:
            raise ModelMissing(f"downloaded {model.filename} from {url or model.url} does not match the pinned file: "
                               f"{problem}")
        os.replace(tmp, dest)
        return dest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

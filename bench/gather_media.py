#!/usr/bin/env python3
"""Re-create the public media listed in bench/data/media_sources.json from fetched repo snapshots.

Offline and stdlib-only. For every entry it runs `git show <commit>:<path>` in the bare git
directory of the snapshot of `repo` found under --mirror-root (e.g. /work/.mirror/owner+name/...),
extracts `zip_member` from that blob when the entry has one, checks the sha256, writes the bytes to
<out>/<local>, and writes the transcript (when known) to a sibling .txt (UTF-8, one line).

    python bench/gather_media.py --mirror-root /work/.mirror --out /work/media
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

DEFAULT_MANIFEST = Path(__file__).resolve().parent / "data" / "media_sources.json"


def find_git_dir(mirror_root: Path, repo: str) -> Path | None:
    base = mirror_root / repo.replace("/", "+")
    if not base.is_dir():
        return None
    if (base / "HEAD").is_file() and (base / "objects").is_dir():
        return base
    for head in sorted(base.rglob("HEAD")):
        d = head.parent
        if (d / "objects").is_dir() and (d / "refs").exists():
            return d
    return None


def blob(git_dir: Path, commit: str, path: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"],
        check=True, capture_output=True,
    ).stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror-root", default="/work/.mirror", type=Path)
    ap.add_argument("--out", default="/work/media", type=Path)
    ap.add_argument("--manifest", default=DEFAULT_MANIFEST, type=Path)
    ap.add_argument("--only", choices=["av", "speech"], help="restrict to one kind")
    args = ap.parse_args(argv)

    entries = json.loads(args.manifest.read_text(encoding="utf-8"))
    ok = bad = missing = 0
    seconds = {"av": 0.0, "speech": 0.0}
    missing_repos: set[str] = set()
    git_dirs: dict[str, Path | None] = {}
    for e in entries:
        if args.only and e["kind"] != args.only:
            continue
        repo = e["repo"]
        if repo not in git_dirs:
            git_dirs[repo] = find_git_dir(args.mirror_root, repo)
        gd = git_dirs[repo]
        if gd is None:
            missing += 1
            missing_repos.add(repo)
            continue
        try:
            data = blob(gd, e["commit"], e["path"])
            if e.get("zip_member"):
                data = zipfile.ZipFile(io.BytesIO(data)).read(e["zip_member"])
        except (subprocess.CalledProcessError, KeyError, zipfile.BadZipFile) as exc:
            print(f"FAIL {e['id']}: cannot read {repo}@{e['commit'][:12]}:{e['path']} ({exc})", file=sys.stderr)
            bad += 1
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != e["sha256"]:
            print(f"FAIL {e['id']}: sha256 {digest} != {e['sha256']}", file=sys.stderr)
            bad += 1
            continue
        dest = args.out / e["local"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        if e.get("transcript"):
            dest.with_suffix(".txt").write_text(" ".join(e["transcript"].split()) + "\n", encoding="utf-8")
        ok += 1
        seconds[e["kind"]] += float(e.get("duration_s") or 0.0)

    print(f"verified and written: {ok}  failed: {bad}  repo snapshot missing: {missing}")
    print(f"av: {seconds['av'] / 60:.1f} min  speech: {seconds['speech'] / 60:.1f} min  -> {args.out}")
    for r in sorted(missing_repos):
        print(f"  missing snapshot: {r} (fetch github:{r} into {args.mirror_root})")
    return 0 if bad == 0 and missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

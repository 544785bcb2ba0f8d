#!/usr/bin/env python3
"""Writes the .meta files Unity needs for a package installed from git (an immutable folder: files without a
.meta are ignored there). GUIDs are derived from the path, so re-running is stable and references between
assets (scene -> script, asset -> script) can be written by hand with guid_for().

    python unity_plugin/Tools~/unity_meta.py          # add missing .meta files
    python unity_plugin/Tools~/unity_meta.py --check  # exit 1 if any is missing (tests/test_unity_package.py)
"""
from __future__ import annotations

import hashlib
import pathlib
import sys

PACKAGE = pathlib.Path(__file__).resolve().parents[1]

IMPORTERS = {
    ".cs": "MonoImporter:\n  externalObjects: {}\n  serializedVersion: 2\n  defaultReferences: []\n  executionOrder: 0\n"
           "  icon: {instanceID: 0}\n",
    ".asmdef": "AssemblyDefinitionImporter:\n  externalObjects: {}\n",
    ".json": "PackageManifestImporter:\n  externalObjects: {}\n",
    ".md": "TextScriptImporter:\n  externalObjects: {}\n",
    ".asset": "NativeFormatImporter:\n  externalObjects: {}\n  mainObjectFileID: 11400000\n",
    ".unity": "DefaultImporter:\n  externalObjects: {}\n",
}
TAIL = "  userData: \n  assetBundleName: \n  assetBundleVariant: \n"


def guid_for(rel: str) -> str:
    """The GUID of a package path such as 'Runtime/Face/FaceMapper.cs'."""
    return hashlib.md5(("dev.avatarbridge.unity/" + rel).encode()).hexdigest()


def hidden(path: pathlib.Path) -> bool:
    """Unity skips names ending in ~ or starting with '.', except that Samples~ is imported into Assets."""
    parts = path.relative_to(PACKAGE).parts
    return any(p.startswith(".") or (p.endswith("~") and p != "Samples~") for p in parts) or path.suffix == ".meta"


def wanted() -> list[pathlib.Path]:
    out = []
    for p in sorted(PACKAGE.rglob("*")):
        if hidden(p) or p == PACKAGE / "Samples~":
            continue
        out.append(p)
    return out


def meta_text(p: pathlib.Path) -> str:
    rel = p.relative_to(PACKAGE).as_posix()
    head = f"fileFormatVersion: 2\nguid: {guid_for(rel)}\n"
    if p.is_dir():
        return head + "folderAsset: yes\nDefaultImporter:\n  externalObjects: {}\n" + TAIL
    importer = IMPORTERS.get(p.suffix, "DefaultImporter:\n  externalObjects: {}\n")
    return head + importer + TAIL


def main() -> int:
    missing = [p for p in wanted() if not p.with_name(p.name + ".meta").exists()]
    if "--check" in sys.argv:
        for p in missing:
            print(f"missing {p.relative_to(PACKAGE)}.meta")
        return 1 if missing else 0
    for p in missing:
        p.with_name(p.name + ".meta").write_text(meta_text(p))
        print(f"wrote {p.relative_to(PACKAGE)}.meta")
    return 0


if __name__ == "__main__":
    sys.exit(main())

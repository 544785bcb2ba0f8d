"""Build hook: generate the Python gRPC stubs from proto/ (never edited by hand).

Runs whenever setup.py runs (every build, wheel or editable), before setup() looks for packages, so the stubs
always match the .proto that ships and a first `pip install -e .` on a clean clone already maps the generated
``avatarbridge`` package (git-ignored): generated later, in build_py, an editable install left it out of its
import map until a second install (tests/test_front_door.py checks one install is enough).
"""
import pathlib

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).resolve().parent


def generate_stubs() -> None:
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{ROOT / 'proto'}", f"-I{include}",
            f"--python_out={ROOT}", f"--pyi_out={ROOT}", f"--grpc_python_out={ROOT}", *protos]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {protos}")
    # Make the generated folders regular packages so setuptools finds them.
    for proto in protos:
        pkg = (ROOT / proto).parent
        while pkg != ROOT:
            (pkg / "__init__.py").touch()
            pkg = pkg.parent


class BuildPyWithStubs(build_py):
    def run(self):
        self.packages = list(dict.fromkeys([*(self.packages or []), "avatarbridge", "avatarbridge.v1"]))
        super().run()


if (ROOT / "proto").is_dir():
    generate_stubs()
setup(cmdclass={"build_py": BuildPyWithStubs})

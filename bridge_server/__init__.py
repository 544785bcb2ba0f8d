"""The gRPC front of the avatar bridge: sessions, streaming, limits, metrics.

It validates and routes; all compute happens in engine worker processes.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("avatar-bridge")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"

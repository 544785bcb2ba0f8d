"""Compute side of the avatar bridge: expression engines, workers, rig conventions.

Nothing in this package speaks gRPC; the bridge server reaches it over ZeroMQ.
"""

"""Engine worker processes, reached by the bridge server over ZeroMQ."""

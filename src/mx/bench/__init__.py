"""`mx bench`: latency, throughput, memory, load time and size, per hardware."""

from mx.bench.backends import BACKENDS, BenchBackend, DeviceUnavailable

__all__ = ["BACKENDS", "BenchBackend", "DeviceUnavailable"]

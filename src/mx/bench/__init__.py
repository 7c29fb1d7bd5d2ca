"""`mx bench`: latency, throughput, memory, load time and size, per hardware."""

from mx.bench.backends import BACKENDS, BenchBackend
from mx.errors import DeviceUnavailable

__all__ = ["BACKENDS", "BenchBackend", "DeviceUnavailable"]

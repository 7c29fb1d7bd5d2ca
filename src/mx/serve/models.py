"""The models a server holds: versions by name, the default and canary routes, failures.

Routing by weight is deterministic (every request moves a counter), so a 10% canary gets
exactly 10 of each 100 unversioned requests, and the tests can say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mx.infer.model import LoadedModel
from mx.serve.batcher import Batcher


@dataclass
class Route:
    spec: str  # what the operator asked for (ns/name@range or a directory)
    default: str | None = None  # version unversioned requests go to
    canary: str | None = None
    canary_percent: float = 0.0
    count: int = 0

    def pick(self) -> str | None:
        self.count += 1
        if self.canary is not None and self.canary_percent > 0:
            n, w = self.count, self.canary_percent
            if int(n * w / 100) > int((n - 1) * w / 100):
                return self.canary
        return self.default


@dataclass
class Served:
    model: LoadedModel
    batcher: Batcher


@dataclass
class ModelSet:
    versions: dict[str, dict[str, Served]] = field(default_factory=dict)  # name -> version ->
    routes: dict[str, Route] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # spec or name -> why it is not ready

    def add(self, served: Served, spec: str, make_default: bool = True) -> None:
        name = served.model.name
        self.versions.setdefault(name, {})[served.model.version] = served
        route = self.routes.setdefault(name, Route(spec))
        if make_default or route.default is None:
            route.default = served.model.version
        self.failed.pop(name, None)
        self.failed.pop(spec, None)

    def get(self, name: str, version: str | None) -> Served | None:
        versions = self.versions.get(name)
        if versions is None:
            return None
        if version is None:
            route = self.routes[name]
            chosen = route.pick()
            return versions.get(chosen) if chosen else None
        return versions.get(version)

    @property
    def ready(self) -> bool:
        return not self.failed

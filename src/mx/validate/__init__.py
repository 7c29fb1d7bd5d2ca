"""`mx validate`: every check of a model directory, as a list of problems.

Each checker is a small function taking the loaded manifest and returning
`Problem`s; `validate_model` runs them in order and never raises for a problem
the user can fix (the CLI decides the exit code).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mx.cardrules import DEFAULT_POLICY
from mx.errors import ConfigError
from mx.manifest import load_manifest

if TYPE_CHECKING:
    from mx.cardrules import CardPolicy

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    path: str
    line: int | None
    message: str
    severity: Severity = "error"

    @classmethod
    def of(cls, exc: ConfigError, default_path: str, severity: Severity = "error") -> Problem:
        """A problem from a ConfigError's fields; one that names no file is about
        `default_path`, and its message is kept whole."""
        if exc.path is None:
            return cls(default_path, None, exc.message, severity)
        return cls(exc.path, exc.line, exc.detail, severity)

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        tag = "" if self.severity == "error" else "warning: "
        return f"{where}: {tag}{self.message}"


@dataclass
class Report:
    model_dir: Path
    problems: list[Problem] = field(default_factory=list)
    written: bool = False  # --write changed mx.yaml
    filled: list[str] = field(default_factory=list)  # what --write filled in: sha256, signature
    digests: dict[str, tuple[str, int]] = field(default_factory=dict)  # artifact -> sha, size

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "model_dir": str(self.model_dir),
            "ok": self.ok,
            "written": self.written,
            "filled": self.filled,
            "problems": [asdict(p) for p in self.problems],
        }


def validate_model(model_dir: Path, write: bool = False,
                   card_policy: CardPolicy | None = None) -> Report:
    """Every check; `card_policy` is a registry's `card:` rules (mx's defaults if None).

    Never raises for a problem in the model: every one is a `Problem` in the report."""
    # the checkers import Problem from this package: imported here, once it exists
    from mx.validate import card_check, files, onnx_check, weights_check

    report = Report(model_dir)
    try:
        loaded = load_manifest(model_dir)
    except ConfigError as exc:
        report.problems.append(Problem.of(exc, str(model_dir / "mx.yaml")))
        return report
    report.problems += [Problem.of(w, str(loaded.path), "warning") for w in loaded.warnings]
    report.problems += card_check.check(loaded, card_policy or DEFAULT_POLICY)
    file_problems, digests = files.check(loaded, write=write)
    report.problems += file_problems
    report.digests = dict(digests)
    report.problems += weights_check.check(loaded, digests)
    if loaded.manifest.signature is None:
        problem, loaded = onnx_check.fill_signature(loaded, digests, write)
        report.problems += [problem] if problem else []
        report.filled += ["signature"] if write and loaded.manifest.signature else []
    report.problems += onnx_check.check(loaded, digests)
    if write and files.fill_hashes(loaded, digests):
        report.filled[:0] = ["sha256 and size"]
    if write and report.filled:
        loaded.write()
        report.written = True
    return report



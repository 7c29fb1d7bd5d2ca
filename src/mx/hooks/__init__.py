"""The checks behind the pre-commit hooks (`mx hook NAME`, `.pre-commit-hooks.yaml`).

Each hook takes the file names pre-commit passes and returns a `HookOutcome`; the CLI
prints it and picks the exit code. Nothing here prints or exits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mx.validate import Problem


@dataclass
class HookOutcome:
    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what was looked at, for the summary
    skipped: str | None = None  # why there was nothing to check

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

"""`mx init`: scaffold a model directory (manifest, card, .gitattributes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mx import __version__
from mx.errors import ConfigError
from mx.fsutil import atomic_write_bytes
from mx.lfs import DEFAULT_PATTERNS
from mx.names import MANIFEST_FILE, check_model_name

# Where mx's hooks and reusable workflows live, and the tag that matches this version.
GITHUB_REPO = "mx-models/mx"
MX_REV = f"v{__version__}"


@dataclass(frozen=True)
class InitOptions:
    name: str
    summary: str = "One line that says what this model does"
    license: str = "apache-2.0"
    task: str = "other"
    force: bool = False


def render(template: str, **values: object) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("mx", "templates"), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)
    return env.get_template(template).render(**values)


def init_model(target: Path, opts: InitOptions) -> list[Path]:
    """Write the scaffold; refuse to overwrite existing files unless `force`.

    Files are written in a monorepo's model directory too; hooks and workflows only take
    effect at a repository's root, so move them up there (the CLI says so)."""
    try:
        check_model_name(opts.name)
    except ValueError as exc:
        raise ConfigError(f"--name: {exc}") from None
    values = {"name": opts.name, "summary": opts.summary, "license": opts.license,
              "task": opts.task, "patterns": DEFAULT_PATTERNS, "github_repo": GITHUB_REPO,
              "mx_rev": MX_REV}
    files = {
        MANIFEST_FILE: render("mx.yaml.j2", **values),
        "README.md": render("README.md.j2", **values),
        ".gitattributes": render("gitattributes.j2", **values),
        ".pre-commit-config.yaml": render("pre-commit-config.yaml.j2", **values),
        ".github/workflows/mx.yml": render("mx-workflow.yml.j2", **values),
    }
    existing = [target / n for n in files if (target / n).exists()]
    if existing and not opts.force:
        raise ConfigError(f"{existing[0]}: already exists; nothing was written",
                          hint="pass --force to overwrite the scaffold files")
    written = []
    for name, text in files.items():
        atomic_write_bytes(target / name, text.encode("utf-8"))
        written.append(target / name)
    return written

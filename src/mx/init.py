"""`mx init`: scaffold a model directory (manifest, card, .gitattributes)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mx import __version__, yamlio
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
    dvc: bool = False  # also dvc.yaml (convert -> optimize -> bench) and params.yaml


def render(template: str, **values: object) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("mx", "templates"), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)
    return env.get_template(template).render(**values)


def manifest_text(opts: InitOptions) -> str:
    """mx.yaml from the commented skeleton, values set through the YAML library.

    A summary such as `VAD v6: speech` or `Says hi # note` is quoted as YAML needs; text
    pasted into a template would change meaning (a mapping, a comment) or not parse."""
    skeleton = (resources.files("mx") / "templates" / MANIFEST_FILE).read_text("utf-8")
    doc = yamlio.load_text(skeleton, "mx.yaml skeleton")
    for key in ("name", "summary", "license", "task"):
        doc[key] = yamlio.string(getattr(opts, key))
    return yamlio.dump_text(doc, like=skeleton)


def card_front_matter(opts: InitOptions) -> str:
    """The card's front matter (Hugging Face keys), as YAML written by the YAML library."""
    return yamlio.dump_text({"license": yamlio.string(opts.license),
                             "pipeline_tag": yamlio.string(opts.task),
                             "library_name": "onnx", "tags": []})


def init_model(target: Path, opts: InitOptions) -> list[Path]:
    """Write the scaffold; refuse to overwrite existing files unless `force`.

    Everything is checked and rendered before the directory is created, so a refused
    init leaves nothing behind. Files are written in a monorepo's model directory too;
    hooks and workflows only take effect at a repository's root, so move them up there
    (the CLI says so)."""
    try:
        check_model_name(opts.name)
    except ValueError as exc:
        raise ConfigError(f"--name: {exc}") from None
    values = {"name": opts.name, "summary": opts.summary, "patterns": DEFAULT_PATTERNS,
              "front_matter": card_front_matter(opts), "github_repo": GITHUB_REPO,
              "mx_rev": MX_REV}
    files = {
        MANIFEST_FILE: manifest_text(opts),
        "README.md": render("README.md.j2", **values),
        ".gitattributes": render("gitattributes.j2", **values),
        ".pre-commit-config.yaml": render("pre-commit-config.yaml.j2", **values),
        ".github/workflows/mx.yml": render("mx-workflow.yml.j2", **values),
    }
    if opts.dvc:
        for name in ("dvc.yaml", "params.yaml"):
            files[name] = (resources.files("mx") / "templates" / name).read_text("utf-8")
    existing = [target / n for n in files if (target / n).exists()]
    if existing and not opts.force:
        raise ConfigError(f"{existing[0]}: already exists; nothing was written",
                          hint="pass --force to overwrite the scaffold files")
    written = []
    for name, text in files.items():
        atomic_write_bytes(target / name, text.encode("utf-8"))  # creates target as needed
        written.append(target / name)
    return written

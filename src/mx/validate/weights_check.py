"""Weight files: safetensors and GGUF headers, sharded safetensors indexes.

Every such file the manifest lists (by name or `format:`) or that lies in the model
directory is read from its header (`mx.weights`); a Git LFS pointer not yet pulled is
skipped here (`files` reports a listed one).
"""

from __future__ import annotations

from mx import lfs
from mx.errors import ConfigError
from mx.fsutil import resolve_inside
from mx.manifest import LoadedManifest
from mx.validate import Problem
from mx.validate.files import Digests
from mx.weights import WeightsInfo, describe, find_in, kind_of


def weight_files(loaded: LoadedManifest) -> dict[str, str]:
    """rel path -> kind (safetensors, gguf, index) of each weight file to check."""
    out: dict[str, str] = {}
    for art in loaded.manifest.artifacts:
        kind = kind_of(art.path) or (str(art.format) if art.format in ("safetensors", "gguf")
                                     else None)
        if kind:
            out[art.path] = kind
    for rel in find_in(loaded.path.parent):
        out.setdefault(rel, kind_of(rel) or "index")
    return out


def infos(loaded: LoadedManifest,
          digests: Digests | None = None) -> tuple[dict[str, WeightsInfo], list[Problem]]:
    """Each readable weight file's header info, and a problem for each malformed one."""
    model_dir = loaded.path.parent
    listed = {a.path for a in loaded.manifest.artifacts}
    found: dict[str, WeightsInfo] = {}
    problems: list[Problem] = []
    for rel, kind in sorted(weight_files(loaded).items()):
        if rel in listed and digests is not None and rel not in digests:
            continue  # missing, a pointer or outside: files.check said so
        target = resolve_inside(model_dir, rel)
        if target is None or not target.is_file() or lfs.looks_like_pointer(target):
            continue
        try:
            found[rel] = describe(model_dir, rel, kind)
        except ConfigError as exc:  # an index reports a bad shard as the shard does: once
            problem = Problem.of(exc, str(model_dir / rel))
            problems += [] if problem in problems else [problem]
        except OSError as exc:
            problems.append(Problem(str(model_dir / rel), None, f"unreadable: {exc}"))
    return found, problems


def check(loaded: LoadedManifest, digests: Digests) -> list[Problem]:
    return infos(loaded, digests)[1]

"""Open each source repository: a local path directly, a URL through a mirror clone."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mx import gitrepo, lfs
from mx.errors import BuildError, GitError
from mx.index_builder.giturl import SCHEMES, check_repo, is_url
from mx.index_builder.registry import SourceSpec


@dataclass
class RegistrySource:
    spec: SourceSpec
    label: str  # as written in registry.yaml, for messages
    url: str  # published in the index (file:// for a local path)
    repo: Any  # pygit2.Repository
    git_dirs: list[Path]  # git directories whose lfs/objects to read first

    def lfs_endpoint(self, commit: str, model_dir: str) -> str | None:
        """The Git LFS endpoint for a release: .lfsconfig at the tag, registry.yaml, or the URL."""
        for rel in (gitrepo.join(model_dir, ".lfsconfig"), ".lfsconfig"):
            data = gitrepo.tree_entry_data(self.repo, commit, rel)
            if data is not None:
                url = lfs.lfs_url_from_config(data.decode("utf-8", "replace"))
                if url:
                    self._check_lfs_url(url, rel, commit)
                    return url
        if self.spec.lfs:
            return self.spec.lfs
        if self.url.startswith(("http://", "https://")):
            return lfs.endpoint_for_remote(self.url)
        if self.url.startswith("file:"):
            return self.url
        return None


    def _check_lfs_url(self, url: str, rel: str, commit: str) -> None:
        """A model repo's `.lfsconfig` may name an http(s) LFS server, or the repository
        itself; never another folder on the build machine, whose objects the builder would
        otherwise copy into the public output."""
        if url.startswith(("http://", "https://")):
            return
        if url.rstrip("/") == self.url.rstrip("/"):
            return
        raise BuildError(
            f"{self.label}: {rel} at {commit[:12]}: lfs.url {url!r} is neither an http(s) LFS "
            "server nor this repository; refused",
            hint="the builder reads LFS objects only from the source or an http(s) server; "
                 "a registry maintainer can name another store with sources[].lfs")


def _is_local(spec: SourceSpec) -> bool:
    return not is_url(spec.repo) or spec.repo.startswith("file://")


def locate_source(spec: SourceSpec, registry_dir: Path, cache_dir: Path) -> Path:
    """Where the source's repository is on this machine: a local path as written (not yet
    checked: `open_source` does), or the builder's mirror of a URL, fetched first."""
    if _is_local(spec):
        return registry_dir / spec.repo.removeprefix("file://")
    mirror = cache_dir / "sources" / (hashlib.sha256(spec.repo.encode()).hexdigest()[:24] + ".git")
    _mirror(spec.repo, mirror)
    return mirror


def open_source(spec: SourceSpec, path: Path) -> RegistrySource:
    """The repository `locate_source` found, opened."""
    if _is_local(spec):
        path = path.resolve()
        if not path.exists():
            raise GitError(f"registry.yaml: source {spec.repo!r}: {path} does not exist",
                           hint="fix sources[].repo: a local path or a URL git can clone")
        repo = gitrepo.open_repo(path)
        gd = gitrepo.git_dir(repo)
        url = (path.as_uri() if repo.is_bare else Path(repo.workdir).resolve().as_uri())
        return RegistrySource(spec, spec.repo, url, repo, [gd])
    return RegistrySource(spec, spec.repo, spec.repo, gitrepo.open_repo(path), [path])


def _mirror(url: str, dest: Path) -> None:
    """Clone (or refresh) a bare mirror of every ref, notes included. No LFS objects."""
    try:
        check_repo(url)  # registry.yaml was checked on load; this is git's command line
    except ValueError as exc:
        raise GitError(f"registry.yaml: sources[].repo: {exc}") from None
    env_quiet = ["-c", "credential.interactive=never"]
    if dest.exists():
        cmd = ["git", *env_quiet, "-C", str(dest), "fetch", "--prune", "--quiet", "origin"]
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
        cmd = ["git", *env_quiet, "clone", "--mirror", "--quiet", "--", url, str(tmp)]
    # GIT_ALLOW_PROTOCOL also binds what the remote may redirect to, and the user's
    # environment cannot widen it (so it comes last)
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={"GIT_TERMINAL_PROMPT": "0", "GIT_LFS_SKIP_SMUDGE": "1",
                               **_base_env(), "GIT_ALLOW_PROTOCOL": ":".join(SCHEMES)})
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["git failed"])[-1]
        raise GitError(f"registry.yaml: source {url!r}: cannot fetch: {last}",
                       hint="check the URL and your credentials for it")
    if not dest.exists():
        dest.with_name(dest.name + ".tmp").rename(dest)


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE")}

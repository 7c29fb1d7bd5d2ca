"""What model CI does to the repository itself: push what it derived back to a pull
request's branch (`mx ci push`), and tag a version bump merged to the default branch
(`mx ci tag`, before `mx sign --push`).

The derived commit is one commit by the CI identity whose message ends in the trailer
`Mx-CI: derived` (MARKER): a run on such a head pushes nothing, so CI's own push never
starts another derive-and-push cycle. Git runs as a subprocess (the user's git, its
credentials and git-lfs's pre-push behaviour), never through pygit2, for anything pushed.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mx.errors import GitError, MxError
from mx.gitrepo import join
from mx.hooks.lfs_check import check_lfs, lfs_filters
from mx.hooks.scope import repo_root
from mx.manifest import Manifest, parse_manifest
from mx.names import MANIFEST_FILE
from mx.semver import InvalidVersion, Version
from mx.sign.notes import NOTES_REF

CI_IDENTITY = "mx-ci <mx-ci@users.noreply.github.com>"
MARKER = "Mx-CI: derived"
_IDENTITY_RE = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>\s]+)>\s*$")
_DENIED_RE = re.compile(r"permission|denied|\b403\b|not allowed|write access|"
                        r"authentication failed|could not read username", re.I)
_MOVED_RE = re.compile(r"non-fast-forward|fetch first|\[rejected\]|stale info", re.I)


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    @classmethod
    def parse(cls, text: str) -> Identity:
        m = _IDENTITY_RE.match(text)
        if not m:
            raise MxError(f"{text!r} is not an identity", hint='write it as "Name <email>"')
        return cls(m["name"], m["email"])

    def env(self) -> dict[str, str]:
        return {"GIT_AUTHOR_NAME": self.name, "GIT_AUTHOR_EMAIL": self.email,
                "GIT_COMMITTER_NAME": self.name, "GIT_COMMITTER_EMAIL": self.email}

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


@dataclass
class PushOutcome:
    status: str  # pushed | own-commit | unchanged | fork | denied | moved
    branch: str
    paths: list[str] = field(default_factory=list)  # what was (or would be) committed
    commit: str | None = None
    subject: str = ""
    detail: str = ""  # git's last line when a push was refused
    left_out: list[str] = field(default_factory=list)  # changed, but not mx's to commit

    @property
    def pushed(self) -> bool:
        return self.status == "pushed"

    def note(self, model_dir: str) -> str:
        """The Markdown note for the pull request (job summary, report comment)."""
        files = ", ".join(f"`{p}`" for p in self.paths)
        by_hand = (f"To add them yourself, run the same commands (`mx convert`, `mx optimize`, "
                   f"`mx bench` on `{model_dir}`) and commit what they change: {files}.")
        text = {
            "pushed": f"pushed `{(self.commit or '')[:12]}` to `{self.branch}`: {self.subject} "
                      f"({files}). Review it in this pull request's diff; runs on that commit "
                      "push nothing.",
            "own-commit": "the head commit is mx CI's own derived commit: nothing is pushed "
                          "again.",
            "unchanged": "nothing derived changed: nothing to push.",
            "fork": f"not pushed: this pull request comes from a fork, which this workflow "
                    f"cannot write to. {by_hand}",
            "denied": f"not pushed: the push to `{self.branch}` was refused ({self.detail}). "
                      f"The calling workflow needs `contents: write`. {by_hand}",
            "moved": f"not pushed: `{self.branch}` moved on while this run derived; the run "
                     "for its new head derives and pushes instead.",
        }[self.status]
        more = (f"\n\nLeft out (changed, but neither mx.yaml nor a file it names): "
                f"{', '.join(f'`{p}`' for p in self.left_out)}." if self.left_out else "")
        return f"**Derived artifacts:** {text}{more}\n"


def _git(root: Path, *args: str, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise GitError(f"git {args[0]}: {last}")
    return proc


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    denied = [ln for ln in lines if _DENIED_RE.search(ln)]
    return (denied or lines or [f"exit {proc.returncode}"])[-1]


def _locate(directory: Path) -> tuple[Path, str]:
    root = repo_root(directory)
    rel = directory.resolve().relative_to(root.resolve()).as_posix()
    return root, "." if rel in ("", ".") else rel


def is_ci_commit(root: Path, rev: str, identity: Identity) -> bool:
    """Whether `rev` is a derived commit of mx CI: the marker trailer, or its author."""
    proc = _git(root, "log", "-1", "--format=%ae%x00%B", rev)
    email, _, body = proc.stdout.partition("\0")
    return email.strip() == identity.email or MARKER in body.splitlines()


def derived_paths(root: Path, model_dir: str) -> tuple[list[str], list[str]]:
    """Changed or new files under the model directory that mx writes (mx.yaml and the files
    it names: artifacts, benchmarks, input profile), and the other changed ones."""
    proc = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--",
                "." if model_dir == "." else model_dir)
    changed: list[str] = []
    entries = proc.stdout.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        if entry[0] in "RC":
            i += 1  # the rename's source follows
        changed.append(entry[3:])
    if not changed:
        return [], []
    manifest_path = root / model_dir / MANIFEST_FILE
    manifest, _, _ = parse_manifest(manifest_path.read_text(encoding="utf-8"),
                                    str(manifest_path))
    names = {join(model_dir, MANIFEST_FILE)} | {join(model_dir, p) for p in _named(manifest)}
    return ([p for p in changed if p in names], [p for p in changed if p not in names])


def _named(manifest: Manifest) -> list[str]:
    out = [a.path for a in manifest.artifacts]
    out += [p for p in (manifest.benchmarks, manifest.input_profile) if p]
    return out


def _subject(root: Path, model_dir: str, paths: list[str]) -> str:
    manifest_path = root / model_dir / MANIFEST_FILE
    manifest, _, _ = parse_manifest(manifest_path.read_text(encoding="utf-8"),
                                    str(manifest_path))
    parts: list[str] = []
    for art in manifest.artifacts:
        if join(model_dir, art.path) in paths:
            parts.append(f"{art.variant} {art.format} ({art.path})")
    if manifest.benchmarks and join(model_dir, manifest.benchmarks) in paths:
        parts.append(f"benchmarks ({manifest.benchmarks})")
    if manifest.input_profile and join(model_dir, manifest.input_profile) in paths:
        parts.append(f"input profile ({manifest.input_profile})")
    return "mx ci: derived " + (", ".join(parts) if parts else "mx.yaml")


def push_derived(directory: Path, branch: str, remote: str = "origin",
                 identity: Identity | None = None, head_repo: str | None = None,
                 base_repo: str | None = None) -> PushOutcome:
    """Commit what CI derived in `directory` as one commit by `identity` and push it (LFS
    objects first) to `branch` on `remote`. Refusals that are not errors (a fork, a denied
    or outrun push, CI's own head, nothing changed) come back as the outcome's status."""
    who = identity or Identity.parse(CI_IDENTITY)
    root, model_dir = _locate(directory)
    if is_ci_commit(root, "HEAD", who):
        return PushOutcome("own-commit", branch)
    paths, left_out = derived_paths(root, model_dir)
    if not paths:
        return PushOutcome("unchanged", branch, left_out=left_out)
    subject = _subject(root, model_dir, paths)
    if head_repo and base_repo and head_repo.lower() != base_repo.lower():
        return PushOutcome("fork", branch, paths, subject=subject, left_out=left_out)
    _git(root, "add", "--", *paths)
    lfs = check_lfs(root, paths)
    if not lfs.ok:
        _git(root, "reset", "-q", "--", *paths)
        problems = "; ".join(str(p) for p in lfs.problems)
        raise MxError(f"the derived files are not ready to commit: {problems}",
                      hint="track the artifacts' extensions with Git LFS in .gitattributes")
    body = "\n".join(f"- {p}" for p in paths)
    _git(root, "commit", "-q", "--no-verify", "-m", subject, "-m", body, "-m", MARKER,
         env=who.env())
    commit = _git(root, "rev-parse", "HEAD").stdout.strip()
    if any(f == "lfs" for f in lfs_filters(root, paths).values()):
        # Objects before the commit that points at them, so no one fetches a dangling pointer.
        proc = _git(root, "lfs", "push", remote, commit, check=False)
        if proc.returncode != 0:
            return _refused(proc, branch, paths, subject, "git lfs push", left_out)
    proc = _git(root, "push", "--", remote, f"{commit}:refs/heads/{branch}", check=False)
    if proc.returncode != 0:
        return _refused(proc, branch, paths, subject, "git push", left_out)
    return PushOutcome("pushed", branch, paths, commit, subject, left_out=left_out)


def _refused(proc: subprocess.CompletedProcess[str], branch: str, paths: list[str],
             subject: str, what: str, left_out: list[str]) -> PushOutcome:
    detail = _last_line(proc)
    if _DENIED_RE.search(proc.stderr):
        return PushOutcome("denied", branch, paths, subject=subject, detail=detail,
                           left_out=left_out)
    if _MOVED_RE.search(proc.stderr):
        return PushOutcome("moved", branch, paths, subject=subject, detail=detail,
                           left_out=left_out)
    raise GitError(f"{what} to {branch}: {detail}")


@dataclass(frozen=True)
class TagOutcome:
    tag: str
    version: str
    created: bool  # False: the version was tagged already


def release_tag_name(model_dir: str, version: str) -> str:
    return f"v{version}" if model_dir == "." else f"{PurePosixPath(model_dir)}/v{version}"


def tag_version(directory: Path, remote: str | None = "origin",
                identity: Identity | None = None) -> TagOutcome:
    """Tag HEAD with the version its mx.yaml names, unless that tag exists here or on
    `remote`. The tag is annotated, by `identity`, and not pushed: `mx sign --push` pushes
    it with its signature. The remote's signature notes are fetched first, so that push
    extends them."""

    who = identity or Identity.parse(CI_IDENTITY)
    root, model_dir = _locate(directory)
    where = join(model_dir, MANIFEST_FILE)
    shown = _git(root, "show", f"HEAD:{where}", check=False)
    if shown.returncode != 0:
        raise GitError(f"{where}: not in the commit at HEAD")
    manifest, _, _ = parse_manifest(shown.stdout, where)
    try:
        Version.parse(manifest.version)
    except InvalidVersion:
        raise MxError(f"{where}: version {manifest.version!r} is not semver, so it cannot "
                      "name a release tag") from None
    tag = release_tag_name(model_dir, manifest.version)
    exists = _git(root, "rev-parse", "-q", "--verify", f"refs/tags/{tag}",
                  check=False).returncode == 0
    if not exists and remote:
        exists = bool(_git(root, "ls-remote", "--tags", "--", remote,
                           f"refs/tags/{tag}").stdout.strip())
    if exists:
        return TagOutcome(tag, manifest.version, False)
    # the signature notes origin has, so the note pushed with the tag is a fast-forward
    if remote and _git(root, "ls-remote", "--", remote, NOTES_REF).stdout.strip():
        _git(root, "fetch", "-q", "--", remote, f"{NOTES_REF}:{NOTES_REF}")
    _git(root, "tag", "-a", tag, "-m", f"{manifest.name} {manifest.version}", "HEAD",
         env=who.env())
    return TagOutcome(tag, manifest.version, True)

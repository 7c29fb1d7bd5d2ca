"""`mx ci push DIR --branch B` and `mx ci tag DIR`: the steps of model CI that write to the
repository (model-ci.yml). Results go to GitHub's step outputs and job summary when the
runner names those files (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

from pathlib import Path

import click

_DIR = click.Path(file_okay=False, exists=True, path_type=Path)
_FILE = click.Path(dir_okay=False, path_type=Path)


def _append(path: Path | None, text: str) -> None:
    if path is not None:
        with path.open("a", encoding="utf-8") as f:
            f.write(text)


@click.group()
def ci() -> None:
    """Model CI's writes: derived artifacts back to a pull request, release tags."""


@ci.command()
@click.argument("directory", type=_DIR, default=".")
@click.option("--branch", required=True, help="The pull request's branch to push to.")
@click.option("--remote", default="origin", show_default=True)
@click.option("--identity", help="Author and committer, \"Name <email>\" "
              "[default: mx-ci <mx-ci@users.noreply.github.com>].")
@click.option("--head-repo", help="The repository the branch lives in (owner/name).")
@click.option("--base-repo", help="The repository CI runs in: a different --head-repo is a "
              "fork, which is not pushed to.")
@click.option("--report", type=_FILE, help="A report (mx report -o) to append the note to.")
@click.option("--summary", type=_FILE, envvar="GITHUB_STEP_SUMMARY",
              help="Append the report and note here [default: $GITHUB_STEP_SUMMARY].")
@click.option("--outputs", type=_FILE, envvar="GITHUB_OUTPUT",
              help="Write status= and commit= here [default: $GITHUB_OUTPUT].")
def push(directory: Path, branch: str, remote: str, identity: str | None,
         head_repo: str | None, base_repo: str | None, report: Path | None,
         summary: Path | None, outputs: Path | None) -> None:
    """Commit what convert, optimize and bench changed (mx.yaml and the files it names) as
    one commit by the CI identity, and push it, LFS objects first, to the branch.

    Nothing is pushed when HEAD is that commit already (its `Mx-CI: derived` trailer), when
    nothing changed, for a fork, or when the push is refused: then the note says why."""
    from mx.ci import Identity, push_derived

    who = Identity.parse(identity) if identity else None
    outcome = push_derived(directory, branch, remote, who, head_repo, base_repo)
    note = outcome.note(directory.as_posix())
    if report is not None:
        _append(report, "\n" + note)
    _append(summary, (report.read_text(encoding="utf-8") if report is not None
                      and report.is_file() else note) + "\n")
    _append(outputs, f"status={outcome.status}\ncommit={outcome.commit or ''}\n")
    if outcome.pushed:
        click.echo(f"pushed {(outcome.commit or '')[:12]} to {remote} {branch}: "
                   f"{outcome.subject}")
    else:
        click.echo(f"nothing pushed ({outcome.status}): {note.strip()}", err=True)


@ci.command()
@click.argument("directory", type=_DIR, default=".")
@click.option("--remote", default="origin", show_default=True,
              help="Also look for the tag here, and fetch its signature notes.")
@click.option("--identity", help="The tagger, \"Name <email>\" "
              "[default: mx-ci <mx-ci@users.noreply.github.com>].")
@click.option("--outputs", type=_FILE, envvar="GITHUB_OUTPUT",
              help="Write tag= (empty when tagged already) here [default: $GITHUB_OUTPUT].")
def tag(directory: Path, remote: str, identity: str | None, outputs: Path | None) -> None:
    """Tag HEAD v<version> (<dir>/v<version> in a monorepo) from its mx.yaml, unless that
    tag exists here or on the remote. Not pushed: `mx sign --tag T --push REMOTE` signs it
    and pushes it with its signature note."""
    from mx.ci import Identity, tag_version

    who = Identity.parse(identity) if identity else None
    outcome = tag_version(directory, remote or None, who)
    _append(outputs, f"tag={outcome.tag if outcome.created else ''}\n"
                     f"version={outcome.version}\n")
    if outcome.created:
        click.echo(f"tagged {outcome.tag} at HEAD; sign and push it with "
                   f"`mx sign --tag {outcome.tag} --push {remote}`")
    else:
        click.echo(f"{outcome.tag} exists already: nothing to tag", err=True)

"""`mx index build registry.yaml -o OUT` (a folder, or s3://BUCKET/PREFIX) and
`mx index serve OUT`"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mx.tufimport import import_tuf

if TYPE_CHECKING:
    from mx.index_builder.build import BuildResult


@click.group()
def index() -> None:
    """Build and serve a static registry index."""


@index.command()
@click.argument("registry_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_arg", metavar="OUT", required=True,
              help="Output folder (what a static host serves), or s3://BUCKET/PREFIX to "
                   "publish to S3-compatible storage (the mx[s3] extra; AWS_* settings).")
@click.option("--strict", is_flag=True, help="A release that fails validation is an error.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where source mirrors and build state live [default: $MX_HOME/build].")
@click.option("--allow-unsigned", is_flag=True,
              help="List unsigned releases as unsigned instead of refusing them.")
@click.option("--trust-config", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Sigstore ClientTrustConfig JSON, for keyless verification offline.")
@click.option("--no-site", is_flag=True, help="Write the index only, not the website.")
@click.option("--keys", "keys_dir", envvar="MX_INDEX_KEYS", show_envvar=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the registry's TUF keys (root.pem, targets.pem, snapshot.pem, "
                   "timestamp.pem) [default: <cache-dir>/keys, created when missing].")
@click.option("--published", metavar="URL",
              help="The live registry: when OUT has no tuf/ yet, fetch the metadata it "
                   "serves first, so versions and the root chain continue (CI builds).")
@click.option("--unsigned-index", is_flag=True,
              help="Write no TUF metadata (clients then need allow_unsigned_index).")
@click.option("--wait", type=click.FloatRange(min=0), default=0, show_default=True,
              metavar="SECONDS",
              help="When another build is writing OUT, wait this long for it to finish.")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
def build(registry_file: Path, out_arg: str, strict: bool, cache_dir: Path | None,
          allow_unsigned: bool, trust_config: Path | None, no_site: bool,
          keys_dir: Path | None, published: str | None, unsigned_index: bool,
          wait: float, as_json: bool) -> None:
    """Build index/ (and mirrored artifacts) from registry.yaml and its model repos,
    signed with TUF metadata under tuf/. One build per OUT at a time (builds sharing a
    --cache-dir see each other); another one is refused, or waited for with --wait.

    With -o s3://BUCKET/PREFIX the build runs into a staging folder in the cache dir, and
    only the objects that changed are uploaded, in dependency order (TUF metadata last);
    objects the build no longer has are deleted after that."""
    import_tuf()
    from mx.client.cache import Cache
    from mx.config import default_home
    from mx.index_builder.workspace import output_lock

    home = default_home().absolute()
    cache = (cache_dir or home / "build").absolute()
    publisher = None
    if out_arg.lower().startswith("s3://"):
        from mx.extras import require
        from mx.index_builder.publish_s3 import Publisher, check_destination

        require("s3", "publishing to s3://")
        dest = check_destination(out_arg)
        stage = dest.staging(cache)
        out = stage / "out"
        publisher = Publisher(dest, stage / "uploaded.json")
    else:
        out = Path(out_arg)
    with ExitStack() as stack:
        if cache.is_relative_to(home):
            # the build cache is part of $MX_HOME: `mx cache clean` waits for the build
            stack.enter_context(Cache(home).shared())
        stack.enter_context(output_lock(out, cache, wait))
        synced = 0
        if publisher is not None and not unsigned_index and not published:
            synced = publisher.sync_tuf(out)
        result = _build(registry_file, out, strict, cache, allow_unsigned, trust_config,
                        no_site, keys_dir, published, unsigned_index)
        summary = result.to_json()
        shown = str(out)
        if publisher is not None:
            pub = publisher.publish(out)
            pub.tuf_synced = synced
            summary["published"] = pub.to_json()
            shown = (f"{pub.url} (staged in {out}; {len(pub.uploaded)} objects uploaded, "
                     f"{len(pub.deleted)} deleted, {pub.unchanged} unchanged)")
    _report(result, summary, shown, as_json)


def _report(result: BuildResult, summary: dict[str, Any], shown: str, as_json: bool) -> None:
    from mx.cli.output import emit_json, warn

    for w in result.warnings:
        warn(w)
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"{shown}: {result.models} models, {result.versions} versions; "
                   f"{result.documents_written} documents and {result.artifacts_written} "
                   f"artifacts written; site: {result.pages_rendered} model pages rendered, "
                   f"{result.site_files_written} files updated")


def _build(registry_file: Path, out: Path, strict: bool, cache: Path, allow_unsigned: bool,
           trust_config: Path | None, no_site: bool, keys_dir: Path | None,
           published: str | None, unsigned_index: bool) -> BuildResult:
    from mx.cli.output import warn
    from mx.index_builder.build import build_index
    from mx.index_builder.keys import KeyRing, generate

    keys = None
    if not unsigned_index:
        if keys_dir is None:
            keys_dir = cache / "keys"
            made = generate(keys_dir)
            if made:
                warn(f"generated new index signing keys ({', '.join(made)}) in {keys_dir}: "
                     "keep root.pem offline and back the folder up; pass --keys to use them")
        keys = KeyRing(keys_dir)
        if published:
            from mx.http import Transport
            from mx.index_builder.trustmeta import seed_from_published

            transport = Transport()
            try:
                seed_from_published(published, out, transport)
            finally:
                transport.close()
    return build_index(registry_file, out, cache, strict, allow_unsigned=allow_unsigned,
                       trust_config=trust_config, site=not no_site, keys=keys)


@index.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--from-env", is_flag=True,
              help="Write the keys given as PEM in MX_INDEX_ROOT_KEY, MX_INDEX_TARGETS_KEY, "
                   "MX_INDEX_SNAPSHOT_KEY and MX_INDEX_TIMESTAMP_KEY (CI secrets); create none.")
@click.option("--keyless", "keyless_identity", metavar="IDENTITY",
              help="Make targets, snapshot and timestamp keyless: signed by this Sigstore "
                   "identity (a CI workflow's) with the job's OIDC token.")
@click.option("--issuer", default="https://token.actions.githubusercontent.com",
              show_default=True, help="The OIDC issuer of --keyless.")
def keys(directory: Path, from_env: bool, keyless_identity: str | None, issuer: str) -> None:
    """Create a registry's TUF keys (Ed25519, one per role) in DIRECTORY."""
    from mx.index_builder.keys import from_environment, generate, make_keyless

    if from_env:
        written = from_environment(directory)
        click.echo(f"{directory}: wrote {', '.join(written) or 'no keys'} from the environment")
    if keyless_identity:
        make_keyless(directory, keyless_identity, issuer)
        click.echo(f"{directory}: targets, snapshot and timestamp are signed keyless by "
                   f"{keyless_identity} ({issuer})")
    if from_env or keyless_identity:
        return
    made = generate(directory)
    if made:
        click.echo(f"{directory}: created {', '.join(k + '.pem' for k in made)}; keep root.pem "
                   "offline, and timestamp.pem where the scheduled refresh runs")
    else:
        click.echo(f"{directory}: every key exists already; nothing created")


@index.command()
@click.argument("out_arg", metavar="OUT")
@click.option("--keys", "keys_dir", envvar="MX_INDEX_KEYS", show_envvar=True, required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder holding timestamp.pem.")
def timestamp(out_arg: str, keys_dir: Path) -> None:
    """Re-sign OUT's TUF timestamp (a scheduled job keeps clients from seeing it expire).
    OUT is a built folder, or s3://BUCKET/PREFIX (only tuf/timestamp.json is uploaded)."""
    from mx.index_builder.keys import KeyRing
    from mx.index_builder.trustmeta import refresh_timestamp

    if not out_arg.lower().startswith("s3://"):
        out = Path(out_arg)
        if not out.is_dir():
            raise click.BadParameter(f"{out} is not a folder", param_hint="OUT")
        version = refresh_timestamp(out, KeyRing(keys_dir))
        click.echo(f"{out}: timestamp version {version}")
        return
    import tempfile

    from mx.errors import BuildError
    from mx.extras import require
    from mx.index_builder.publish_s3 import Publisher, check_destination

    require("s3", "publishing to s3://")
    dest = check_destination(out_arg)
    with tempfile.TemporaryDirectory(prefix="mx-timestamp-") as tmp:
        publisher = Publisher(dest, Path(tmp) / "uploaded.json")
        if not publisher.sync_tuf(Path(tmp)):
            raise BuildError(f"{dest.url}: no tuf/timestamp.json to refresh",
                             hint="publish the index with `mx index build -o` first")
        version = refresh_timestamp(Path(tmp), KeyRing(keys_dir))
        publisher.upload(Path(tmp), ["tuf/timestamp.json"])
    click.echo(f"{dest.url}: timestamp version {version}")


@index.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(directory: Path, host: str, port: int) -> None:
    """Serve a built registry folder over HTTP (ETag and Range support), for local use."""
    from mx.devserver import base_url, make_server

    server = make_server(directory, host, port)
    click.echo(f"serving {directory} at {base_url(server)} (Ctrl-C stops)", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()

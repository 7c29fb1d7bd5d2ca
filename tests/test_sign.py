"""Signing and verification: keys fully offline, the real keyless fixture offline, the
keyless signing call up to the network boundary, and tampering at every step."""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mx.sign.notes import NOTES_REF
from tests.support.examples import git, make_model_repo, make_signing_key, sign_all_releases
from tests.support.republish import resign
from tests.support.servers import Host

FIXTURES = Path(__file__).resolve().parent / "fixtures"  # in the repo: a clone has all it needs
OMS = FIXTURES / "oms-sigstore-v1.1.0"
TRUST = FIXTURES / "sigstore-prod-trust-config.json"
IBM = ("stefanb@us.ibm.com", "https://sigstore.verify.ibm.com/oauth2")


@pytest.fixture
def signed_repo(tmp_path: Path) -> tuple[Path, Path, Path]:
    repo = make_model_repo(tmp_path / "repo", "acme/iris", ["1.0.0"])
    private, public = make_signing_key(tmp_path / "keys")
    return repo.path, private, public


def test_sign_then_verify_with_key(mx, signed_repo: tuple[Path, Path, Path],  # type: ignore[no-untyped-def]
                                   tmp_path: Path) -> None:
    repo, private, public = signed_repo
    res = mx("sign", repo, "--key", private)
    assert res.code == 0, res.err
    assert "signed v1.0.0" in res.out and NOTES_REF in res.out
    note = json.loads(git(repo, "notes", "--ref", "mx-signatures", "show", "v1.0.0^{}"))
    assert list(note) == ["."] and "dsseEnvelope" in note["."]
    res = mx("verify", repo, "--key", public, "--json")
    assert res.code == 0, res.err
    report = json.loads(res.out)
    assert sorted(report["files"]) == ["README.md", "model.onnx", "mx.yaml"]
    _, other = make_signing_key(tmp_path / "other")
    res = mx("verify", repo, "--key", other)
    assert res.code == 1 and "not from a signer allowed" in res.err


def test_sign_needs_a_release_at_head(mx, signed_repo: tuple[Path, Path, Path]) -> None:  # type: ignore[no-untyped-def]
    repo, private, _ = signed_repo
    (repo / "notes.txt").write_text("later work")
    git(repo, "add", "notes.txt")
    git(repo, "commit", "-qm", "after the release")
    res = mx("sign", repo, "--key", private)
    assert res.code == 1 and "no release tag points at HEAD" in res.err
    assert mx("sign", repo, "--key", private, "--tag", "v1.0.0").code == 0
    res = mx("sign", repo, "--key", private, "--tag", "v9.9.9")
    assert res.code == 1 and "not a release tag of this model" in res.err


def test_sign_usage_and_bad_key(mx, signed_repo: tuple[Path, Path, Path],  # type: ignore[no-untyped-def]
                                tmp_path: Path) -> None:
    repo, private, public = signed_repo
    assert mx("sign", repo).code == 2
    assert mx("sign", repo, "--key", private, "--sigstore").code == 2
    res = mx("sign", repo, "--key", public)  # a public key is no private key
    assert res.code == 1 and "not a usable EC private key" in res.err
    res = mx("sign", repo, "--key", tmp_path / "nope.pem")
    assert res.code == 1 and "no such file" in res.err


def test_monorepo_signatures_share_one_note(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = tmp_path / "mono"
    make_model_repo(repo, "acme/a", ["1.0.0"], model_dir="models/a")
    make_model_repo(repo, "acme/b", ["1.0.0"], model_dir="models/b")
    private, public = make_signing_key(tmp_path / "keys")
    assert mx("sign", repo / "models/b", "--key", private).code == 0
    git(repo, "tag", "-a", "-m", "a again", "models/a/v1.0.1")  # a release on b's commit
    assert mx("sign", repo / "models/a", "--key", private, "--tag", "models/a/v1.0.1").code == 0
    note = json.loads(git(repo, "notes", "--ref", "mx-signatures", "show", "HEAD"))
    assert sorted(note) == ["models/a", "models/b"]  # one note, a bundle per model
    assert mx("verify", repo / "models/b", "--key", public).code == 0
    assert mx("verify", repo / "models/a", "--key", public, "--tag", "models/a/v1.0.1").code == 0


# -- keyless: the real production bundle, verified offline -----------------------------


def keyless(mx, model: Path, identity: str, issuer: str):  # type: ignore[no-untyped-def]
    return mx("verify", model, "--signature", OMS / "model.sig", "--identity", identity,
              "--issuer", issuer, "--trust-config", TRUST, "--ignore", "ignore-me")


def test_keyless_fixture_verifies_offline(mx) -> None:  # type: ignore[no-untyped-def]
    res = keyless(mx, OMS / "model", *IBM)
    assert res.code == 0, res.err
    assert "stefanb@us.ibm.com" in res.out and "2 files" in res.out
    res = keyless(mx, OMS / "model", "stefanb@us.*", IBM[1])  # a trailing * is a prefix
    assert res.code == 0, res.err


@pytest.mark.parametrize(("identity", "issuer", "needle"), [
    ("mallory@us.ibm.com", IBM[1], "is not mallory@us.ibm.com"),
    ("stefanb@us.ibm.com", "https://accounts.google.com", "accounts.google.com"),
    ("alice@*", IBM[1], "is not alice@*"),
])
def test_keyless_fixture_wrong_signer(mx, identity: str, issuer: str, needle: str) -> None:  # type: ignore[no-untyped-def]
    res = keyless(mx, OMS / "model", identity, issuer)
    assert res.code == 1 and needle in res.err


def test_keyless_fixture_changed_file(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "model"
    shutil.copytree(OMS / "model", model)
    (model / "signme-1").write_bytes((model / "signme-1").read_bytes() + b"!")
    res = keyless(mx, model, *IBM)
    assert res.code == 1 and "signme-1 has sha256" in res.err
    shutil.rmtree(model)
    shutil.copytree(OMS / "model", model)
    (model / "extra").write_text("added after signing")
    res = keyless(mx, model, *IBM)
    assert res.code == 1 and "extra is not covered by the signature" in res.err


@pytest.fixture
def fake_sigstore(tmp_path: Path) -> Iterator[tuple[Path, list[tuple[str, str]]]]:
    """A trust config whose OIDC issuer, Fulcio and Rekor are one local server that
    records requests: the network boundary of keyless signing."""
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            seen.append((f"{self.command} {self.path}", body.decode(errors="replace")))
            if self.path == "/.well-known/openid-configuration":
                data = json.dumps({"issuer": url, "authorization_endpoint": url + "/auth",
                                   "token_endpoint": url + "/token"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    config = json.loads(TRUST.read_text())
    for key in ("caUrls", "rekorTlogUrls", "oidcUrls"):
        config["signingConfig"][key][0]["url"] = url
    config["signingConfig"]["tsaUrls"] = []
    path = tmp_path / "local-trust-config.json"
    path.write_text(json.dumps(config))
    yield path, seen
    server.shutdown()


def _token() -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return ".".join([part({"alg": "RS256", "typ": "JWT"}),
                     part({"iss": "https://token.actions.githubusercontent.com",
                           "aud": "sigstore", "sub": "repo:acme/iris:ref:refs/tags/v1.0.0",
                           "email": "ci@example.invalid", "iat": now, "nbf": now,
                           "exp": now + 600}), "c2lnbmF0dXJl"])


def test_keyless_signing_reaches_fulcio(mx, signed_repo: tuple[Path, Path, Path],  # type: ignore[no-untyped-def]
                                        fake_sigstore: tuple[Path, list[tuple[str, str]]],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    repo, _, _ = signed_repo
    for var in ("SIGSTORE_ID_TOKEN", "GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL"):
        monkeypatch.delenv(var, raising=False)
    res = mx("sign", repo, "--sigstore")
    assert res.code == 1 and "no OIDC identity token" in res.err and "id-token" in res.err
    trust, seen = fake_sigstore
    res = mx("sign", repo, "--sigstore", "--identity-token", _token(), "--trust-config", trust)
    assert res.code == 1 and "--sigstore: signing failed" in res.err
    csr = [body for request, body in seen if request == "POST /api/v2/signingCert"]
    assert csr and "certificateSigningRequest" in csr[0]
    assert git(repo, "notes", "--ref", "mx-signatures", "list").strip() == ""


# -- the index builder ---------------------------------------------------------------


def test_index_records_signatures(built: Path) -> None:
    doc = json.loads((built / "index/models/acme/iris.json").read_text())
    sig = doc["versions"]["1.1.0"]["signature"]
    assert sig["url"] == "signatures/acme/iris/1.1.0.sigstore.json"
    assert "key_id" in sig["signer"] and "BEGIN PUBLIC KEY" in sig["signer"]["public_key"]
    import hashlib

    assert hashlib.sha256((built / sig["url"]).read_bytes()).hexdigest() == sig["sha256"]


def build(mx, registry_file: Path, out: Path, *args: str):  # type: ignore[no-untyped-def]
    return mx("index", "build", registry_file, "-o", out, *args)


def test_builder_refuses_unsigned(mx, world: Path, registry_file: Path) -> None:  # type: ignore[no-untyped-def]
    repo = world / "repos/iris"
    git(repo, "notes", "--ref", "mx-signatures", "remove", "v1.1.0^{}")
    res = build(mx, registry_file, world / "out")
    assert res.code == 1 and "tag v1.1.0: the release is not signed" in res.err
    assert "mx sign --tag v1.1.0" in res.err and not (world / "out").exists()
    res = build(mx, registry_file, world / "out", "--allow-unsigned", "--json")
    assert res.code == 0
    doc = json.loads((world / "out/index/models/acme/iris.json").read_text())
    assert doc["versions"]["1.1.0"]["signature"] is None
    assert doc["versions"]["1.0.0"]["signature"] is not None


def test_builder_refuses_unlisted_signer(mx, world: Path, registry_file: Path) -> None:  # type: ignore[no-untyped-def]
    sign_all_releases(world / "repos/iris", world / "keys/intruder.pem")
    res = build(mx, registry_file, world / "out")
    assert res.code == 1 and "not from a signer allowed for this namespace" in res.err
    assert "keys/acme.pub" in res.err


def test_builder_refuses_signature_of_another_version(mx, world: Path,  # type: ignore[no-untyped-def]
                                                      registry_file: Path) -> None:
    repo = world / "repos/iris"
    note = git(repo, "notes", "--ref", "mx-signatures", "show", "v1.0.0^{}")
    (world / "note.json").write_text(note)
    git(repo, "notes", "--ref", "mx-signatures", "add", "-f", "-F", str(world / "note.json"),
        "v1.1.0^{}")
    res = build(mx, registry_file, world / "out")
    assert res.code == 1 and "tag v1.1.0" in res.err and "the signature says" in res.err


def test_builder_refuses_file_added_after_signing(mx, world: Path,  # type: ignore[no-untyped-def]
                                                  registry_file: Path) -> None:
    repo = world / "repos/iris"
    note = git(repo, "notes", "--ref", "mx-signatures", "show", "v2.0.0-rc.1^{}")
    git(repo, "checkout", "-q", "v2.0.0-rc.1")
    (repo / "extra.txt").write_text("slipped in after signing")
    git(repo, "add", "extra.txt")
    git(repo, "commit", "-qm", "extra")
    git(repo, "tag", "-f", "-a", "v2.0.0-rc.1", "-m", "moved")
    (world / "note.json").write_text(note)
    git(repo, "notes", "--ref", "mx-signatures", "add", "-f", "-F", str(world / "note.json"),
        "HEAD")
    res = build(mx, registry_file, world / "out")
    assert res.code == 1 and "extra.txt is not covered by the signature" in res.err


# -- the client ----------------------------------------------------------------------


def doc_of(host: Host) -> dict:  # type: ignore[type-arg]
    return json.loads((host.root / "index/models/acme/iris.json").read_text())


def save(host: Host, doc: dict) -> None:  # type: ignore[type-arg]
    """Publish an edited document, re-signed: what a builder whose keys were taken could
    serve. The release signature is then what stands between it and the user."""
    (host.root / "index/models/acme/iris.json").write_text(json.dumps(doc))
    resign(host.root)


def refused(mx, host: Host, tmp_path: Path, spec: str, *needles: str) -> None:  # type: ignore[no-untyped-def]
    res = mx("install", spec, "--registry", host.url)
    assert res.code == 1, res.err
    for needle in needles:
        assert needle in res.err
    models = tmp_path / "mxhome/models"
    assert not models.exists() or not any(p.is_file() for p in models.rglob("*"))


def pin(key: Path) -> None:
    import os

    Path(os.environ["MX_CONFIG"]).write_text(
        f'[limits]\nbackoff = 0.001\n[trust.namespaces.acme]\nsigners = '
        f'[{{public_key = "{key}"}}]\n')


def test_client_installs_signed(mx, host: Host, world: Path) -> None:  # type: ignore[no-untyped-def]
    pin(world / "keys/acme.pub")
    res = mx("install", "acme/iris@1.1.0", "--registry", host.url, "--json")
    assert res.code == 0, res.err
    [got] = json.loads(res.out)
    assert got["signed"] is True and set(got["files"]) == {"model.onnx", "README.md", "mx.yaml"}
    res = mx("verify", "acme/iris@1.1.0", "--registry", host.url)
    assert res.code == 0 and "signature ok" in res.out and "3 files" in res.out


def test_client_refuses_index_and_artifact_changed_together(mx, host: Host,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path) -> None:
    doc = doc_of(host)
    art = doc["versions"]["1.1.0"]["artifacts"][0]
    evil = b"not the model that was signed"
    import hashlib

    sha = hashlib.sha256(evil).hexdigest()
    (host.root / "artifacts/sha256" / sha).write_bytes(evil)
    art.update(sha256=sha, size=len(evil), urls=[f"artifacts/sha256/{sha}"])
    save(host, doc)
    refused(mx, host, tmp_path, "acme/iris@1.1.0", f"model.onnx has sha256 {sha}",
            "the signature says")


def test_client_refuses_bundle_of_another_version(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = doc_of(host)
    doc["versions"]["1.1.0"]["signature"] = doc["versions"]["1.0.0"]["signature"]
    save(host, doc)
    refused(mx, host, tmp_path, "acme/iris@1.1.0", "the signature says")


def test_client_refuses_replayed_bundle_when_files_match(mx, host: Host,  # type: ignore[no-untyped-def]
                                                         tmp_path: Path) -> None:
    # Worst case: v1.1.0 re-described with v1.0.0's files and signature. Every digest
    # matches; only the signed mx.yaml tells the versions apart.
    doc = doc_of(host)
    old = json.loads(json.dumps(doc["versions"]["1.0.0"]))
    doc["versions"]["1.1.0"] = {**old, "tag": "v1.1.0"}
    save(host, doc)
    refused(mx, host, tmp_path, "acme/iris@1.1.0", "the signed mx.yaml is for acme/iris 1.0.0")


def test_client_refuses_unlisted_signer_with_pinned_policy(mx, host: Host, world: Path,  # type: ignore[no-untyped-def]
                                                           tmp_path: Path) -> None:
    pin(world / "keys/intruder.pub")
    refused(mx, host, tmp_path, "acme/iris@1.1.0", "not from a signer allowed")


def test_client_refuses_removed_bundle(mx, host: Host, world: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (host.root / "signatures/acme/iris/1.1.0.sigstore.json").unlink()
    refused(mx, host, tmp_path, "acme/iris@1.1.0", "1.1.0.sigstore.json: HTTP 404")
    doc = doc_of(host)
    doc["versions"]["1.1.0"]["signature"] = None
    save(host, doc)
    pin(world / "keys/acme.pub")
    refused(mx, host, tmp_path, "acme/iris@1.1.0", "acme/iris 1.1.0 is not signed",
            "--allow-unsigned")
    res = mx("install", "acme/iris@1.1.0", "--registry", host.url, "--allow-unsigned")
    assert res.code == 0


def test_client_refuses_extra_file_not_signed(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = doc_of(host)
    rec = doc["versions"]["1.1.0"]
    blob = next(iter((host.root / "artifacts/sha256").iterdir()))
    rec["artifacts"].append({"path": "extra.onnx", "format": "onnx", "variant": "fp32",
                             "sha256": blob.name, "size": blob.stat().st_size,
                             "urls": [f"artifacts/sha256/{blob.name}"]})
    rec["artifacts"][0]["format"] = "ort"  # keep (format, variant) unique
    save(host, doc)
    refused(mx, host, tmp_path, "acme/iris@1.1.0", "extra.onnx is not covered by the signature")


def test_registry_config_requires_signatures(mx, host: Host, world: Path,  # type: ignore[no-untyped-def]
                                             tmp_path: Path) -> None:
    import os

    doc = doc_of(host)
    doc["versions"]["1.1.0"]["signature"] = None
    save(host, doc)
    assert mx("install", "acme/iris@1.1.0", "--registry", host.url).code == 0  # not required
    shutil.rmtree(tmp_path / "mxhome")
    Path(os.environ["MX_CONFIG"]).write_text(
        f'default_registry = "acme"\n[registries.acme]\nurl = "{host.url}"\n'
        'require_signatures = true\n')
    refused(mx, host, tmp_path, "acme/iris@1.1.0", "is not signed", "--allow-unsigned")
    assert mx("install", "acme/iris@1.0.0").code == 0  # signed ones still install


def test_sign_push_sends_tag_and_notes(mx, signed_repo: tuple[Path, Path, Path],  # type: ignore[no-untyped-def]
                                       tmp_path: Path) -> None:
    repo, private, _ = signed_repo
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    res = mx("sign", repo, "--key", private, "--push", "origin")
    assert res.code == 0, res.err
    refs = git(bare, "for-each-ref", "--format=%(refname)")
    assert "refs/tags/v1.0.0" in refs and NOTES_REF in refs
    res = mx("sign", repo, "--key", private, "--push", "nowhere")
    assert res.code == 1 and "push to nowhere" in res.err


def _raw_tree(repo: Path, entries: list[tuple[bytes, bytes, str]]) -> str:
    """A tree object written byte for byte, as no git command would write it: names such
    as `..` that libgit2 refuses to build but reads back."""
    import hashlib
    import zlib

    body = b"".join(mode + b" " + name + b"\0" + bytes.fromhex(oid)
                    for mode, name, oid in sorted(entries, key=lambda e: e[1]))
    data = b"tree %d\0" % len(body) + body
    sha = hashlib.sha1(data).hexdigest()
    path = repo / ".git" / "objects" / sha[:2] / sha[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zlib.compress(data))
    return sha


@pytest.mark.parametrize(("name", "says"), [
    (b"..", "not a file name git would check out"), (b".", "not a file name git"),
    (b"a/b", "not a file name git"), (b".GIT", "a name git keeps for itself"),
    # git on Linux commits such a name; model-signing's protobuf cannot encode it (exit 3)
    (b"\xff.bin", "not UTF-8")])
def test_sign_writes_nothing_outside_its_folder_for_a_hostile_tree(  # type: ignore[no-untyped-def]
        mx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: bytes, says: str) -> None:
    """A release tag whose tree has `..` entries (crafted objects: git refuses to check them
    out, libgit2 reads them): signing writes the tree out to hash it, and must not follow
    them out of its temp folder (up to a home directory's files)."""
    import tempfile

    import pygit2

    repo = make_model_repo(tmp_path / "repo", "acme/iris", ["1.0.0"]).path
    private, _ = make_signing_key(tmp_path / "keys")
    pg = pygit2.Repository(str(repo))
    head = pg.head.peel(pygit2.Commit)
    payload = str(pg.create_blob(b"escaped\n"))
    inner = _raw_tree(repo, [(b"100644", b"escape.txt", payload)])
    for _ in range(4):  # ../../../../escape.txt: above the temp folder's parent
        inner = _raw_tree(repo, [(b"40000", name, inner)])
    top = _raw_tree(repo, [(b"40000" if e.type_str == "tree" else b"100644", e.name.encode(),
                            str(e.id)) for e in head.tree] + [(b"40000", name, inner)])
    sig = pygit2.Signature("a", "a@example.com")
    commit = pg.create_commit(None, sig, sig, "hostile", pygit2.Oid(hex=top), [head.id])
    pg.create_tag("v1.0.1", commit, pygit2.enums.ObjectType.COMMIT, sig, "release")
    deep = tmp_path / "tmp" / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    res = mx("sign", repo, "--key", private, "--tag", "v1.0.1")
    assert res.code == 1, res.out + res.err
    assert says in res.err and "\n" not in res.err.split("hint:")[0].strip(), res.err
    assert not [p for p in tmp_path.rglob("escape.txt")]

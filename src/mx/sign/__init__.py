"""Signing and verification with OpenSSF Model Signing bundles (Sigstore, DSSE, in-toto).

`statement` reads what a bundle says, `policy` decides whether to believe it (keys and
Sigstore identities), `signers` make bundles (plugins), `notes` keep them in git.
Verification never reads model files: callers compare the signed digests with the
sha256 they already have (LFS pointers, or what a download computed).
"""

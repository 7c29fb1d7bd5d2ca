"""Which `sources[].repo` values mx hands to git, and which it refuses.

`git clone URL` reads a URL that starts with `-` as an option (`--upload-pack=CMD` runs
CMD), and `<transport>::<address>` as a remote helper (`ext::sh -c CMD` runs CMD). A
registry.yaml is reviewed, but it names repositories other people control, so only
plain transports pass: https, http, ssh, git, file, scp-like `user@host:path`, and local
paths (opened with pygit2, never on a git command line).
"""

from __future__ import annotations

import re

SCHEMES = ("https", "http", "ssh", "git", "file")
# git's own rule for `<transport>::<address>` (transport-helper syntax)
_HELPER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.-]*::")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/]*)")
_SCP = re.compile(r"^([^@/:]+)@([^/:]+):")


def is_url(text: str) -> bool:
    """A URL or scp-like address for `git clone`; anything else is a local path."""
    return "://" in text or _SCP.match(text) is not None


def check_repo(value: str) -> str:
    """`value` unchanged, or ValueError saying why git must not see it."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"{value!r} holds a control character")
    if value.startswith("-"):
        raise ValueError(f"{value!r} starts with '-': git would read it as an option")
    if _HELPER.match(value):
        raise ValueError(f"{value!r} names a git remote helper ('::'); use one of "
                         f"{', '.join(SCHEMES)}, user@host:path, or a local path")
    m = _SCHEME.match(value)
    if "://" in value and m is None:
        raise ValueError(f"{value!r} is not a URL git can clone")
    if m is not None:
        scheme, authority = m.group(1).lower(), m.group(2)
        if scheme not in SCHEMES:
            raise ValueError(f"{value!r}: scheme {scheme!r} is not allowed; use one of "
                             f"{', '.join(SCHEMES)}")
        if authority.rpartition("@")[2].startswith("-"):
            raise ValueError(f"{value!r}: a host that starts with '-' would reach ssh as "
                             "an option")
    scp = _SCP.match(value)
    if scp is not None and (scp.group(1).startswith("-") or scp.group(2).startswith("-")):
        raise ValueError(f"{value!r}: a user or host that starts with '-' would reach ssh "
                         "as an option")
    return value

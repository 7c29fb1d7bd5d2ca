"""A test-only giftless auth provider: one identity, allowed everything.

giftless 0.6.2's stock allow_anon provider fails (per-object authorization bug and
a null JWT subject that PyJWT >= 2.10 rejects).
"""

from __future__ import annotations

from typing import Any

from giftless.auth.identity import Identity, Permission


class Tester(Identity):
    def __init__(self) -> None:
        super().__init__(name="tester", id="tester", email="tester@example.invalid")

    def is_authorized(self, organization: str, repo: str, permission: Permission,
                      oid: str | None = None) -> bool:
        return True


def everyone(_request: Any) -> Tester:
    return Tester()

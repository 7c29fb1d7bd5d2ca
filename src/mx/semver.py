"""SemVer 2.0 versions and npm-style ranges.

Kept dependency-free because the client's hot path (`mx install` of something
already cached) imports it. Semantics follow node-semver: `^`, `~`, x-ranges,
hyphen ranges, `||`, and the pre-release rule: a pre-release version matches a
range only if some comparator in the same set names a pre-release of the same
`major.minor.patch`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_NUM = r"0|[1-9]\d*"
_PRE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_VERSION_RE = re.compile(
    rf"^v?(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


class InvalidVersion(ValueError):
    pass


class InvalidRange(ValueError):
    pass


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        m = _VERSION_RE.match(text.strip())
        if not m:
            raise InvalidVersion(f"{text!r} is not a SemVer version (MAJOR.MINOR.PATCH)")
        pre = tuple(m["pre"].split(".")) if m["pre"] else ()
        build = tuple(m["build"].split(".")) if m["build"] else ()
        return cls(int(m["major"]), int(m["minor"]), int(m["patch"]), pre, build)

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def _key(self) -> tuple[tuple[int, int, int], int, tuple[tuple[int, int, str], ...]]:
        # A release sorts after all of its pre-releases; numeric identifiers
        # sort before alphanumeric ones (SemVer 2.0, section 11).
        ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.release, 0 if self.prerelease else 1, ids)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


# --- ranges -----------------------------------------------------------------

_X = {"x", "X", "*"}
_PARTIAL_RE = re.compile(
    r"^v?(?P<major>\d+|[xX*])(?:\.(?P<minor>\d+|[xX*])(?:\.(?P<patch>\d+|[xX*])"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?)?)?$"
)
_COMPARATOR_RE = re.compile(r"^(?P<op><=|>=|<|>|=|\^|~>?|)\s*(?P<ver>\S*)$")


@dataclass(frozen=True)
class Comparator:
    op: str  # one of < <= > >= =
    version: Version

    def test(self, v: Version) -> bool:
        if self.op == "<":
            return v < self.version
        if self.op == "<=":
            return v <= self.version
        if self.op == ">":
            return v > self.version
        if self.op == ">=":
            return v >= self.version
        return v == self.version

    def __str__(self) -> str:
        return f"{self.op}{self.version}"


def _v(major: int, minor: int, patch: int, pre: tuple[str, ...] = ()) -> Version:
    return Version(major, minor, patch, pre)


_FLOOR = ("0",)  # `<2.0.0-0` excludes 2.0.0's pre-releases too


def _partial(text: str) -> tuple[int | None, int | None, int | None, tuple[str, ...]]:
    m = _PARTIAL_RE.match(text)
    if not m:
        raise InvalidRange(f"{text!r} is not a version or partial version")

    def num(part: str | None) -> int | None:
        return None if part is None or part in _X else int(part)

    major, minor, patch = num(m["major"]), num(m["minor"]), num(m["patch"])
    if major is None:
        minor = patch = None
    elif minor is None:
        patch = None
    pre = tuple(m["pre"].split(".")) if m["pre"] and patch is not None else ()
    return major, minor, patch, pre


def _expand(op: str, text: str) -> list[Comparator]:
    major, minor, patch, pre = _partial(text)
    if op == "^":
        if major is None:
            return []
        lo = _v(major, minor or 0, patch or 0, pre)
        if major > 0 or minor is None:
            hi = _v(major + 1, 0, 0, _FLOOR)
        elif minor > 0 or patch is None:
            hi = _v(0, minor + 1, 0, _FLOOR)
        else:
            hi = _v(0, 0, patch + 1, _FLOOR)
        return [Comparator(">=", lo), Comparator("<", hi)]
    if op in ("~", "~>"):
        if major is None:
            return []
        lo = _v(major, minor or 0, patch or 0, pre)
        hi = _v(major + 1, 0, 0, _FLOOR) if minor is None else _v(major, minor + 1, 0, _FLOOR)
        return [Comparator(">=", lo), Comparator("<", hi)]
    if major is None:  # `*`, `x`, `>=*`: anything (but `<*` / `>*` match nothing)
        return [Comparator("<", _v(0, 0, 0, _FLOOR))] if op in ("<", ">") else []
    if patch is not None:
        return [Comparator(op or "=", _v(major, minor or 0, patch, pre))]
    # An x-range such as `1.2` or `1.x`, possibly with an operator.
    lo = _v(major, minor or 0, 0)
    hi = _v(major + 1, 0, 0, _FLOOR) if minor is None else _v(major, minor + 1, 0, _FLOOR)
    if op in ("", "="):
        return [Comparator(">=", lo), Comparator("<", hi)]
    if op == ">":
        return [Comparator(">=", _v(hi.major, hi.minor, 0))]
    if op == ">=":
        return [Comparator(">=", lo)]
    if op == "<":
        return [Comparator("<", _v(lo.major, lo.minor, 0, _FLOOR))]
    return [Comparator("<", hi)]  # <=


def _hyphen(lo_text: str, hi_text: str) -> list[Comparator]:
    lmaj, lmin, lpat, lpre = _partial(lo_text)
    out = [] if lmaj is None else [Comparator(">=", _v(lmaj, lmin or 0, lpat or 0, lpre))]
    hmaj, hmin, hpat, hpre = _partial(hi_text)
    if hmaj is None:
        return out
    if hpat is not None:
        out.append(Comparator("<=", _v(hmaj, hmin or 0, hpat, hpre)))
    elif hmin is not None:
        out.append(Comparator("<", _v(hmaj, hmin + 1, 0, _FLOOR)))
    else:
        out.append(Comparator("<", _v(hmaj + 1, 0, 0, _FLOOR)))
    return out


def _tokens(text: str) -> list[str]:
    # Join an operator to the version that follows it: `>= 1.2` is `>=1.2`.
    raw = text.split()
    out: list[str] = []
    for tok in raw:
        if out and out[-1] in ("<", "<=", ">", ">=", "=", "^", "~", "~>"):
            out[-1] += tok
        else:
            out.append(tok)
    return out


@dataclass(frozen=True)
class Range:
    text: str
    sets: tuple[tuple[Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Range:
        sets: list[tuple[Comparator, ...]] = []
        for part in text.split("||"):
            part = part.strip()
            comps: list[Comparator] = []
            hy = re.match(r"^(\S+)\s+-\s+(\S+)$", part)
            if hy:
                comps = _hyphen(hy[1], hy[2])
            else:
                for tok in _tokens(part):
                    m = _COMPARATOR_RE.match(tok)
                    if not m or not m["ver"]:
                        raise InvalidRange(f"{text!r}: cannot read {tok!r} as a comparator")
                    comps.extend(_expand(m["op"], m["ver"]))
            sets.append(tuple(comps))
        return cls(text, tuple(sets))

    def contains(self, version: Version) -> bool:
        return any(_set_matches(s, version) for s in self.sets)

    def best(self, versions: list[Version]) -> Version | None:
        ok = [v for v in versions if self.contains(v)]
        return max(ok) if ok else None

    def __str__(self) -> str:
        return self.text


def _set_matches(comps: tuple[Comparator, ...], version: Version) -> bool:
    if not all(c.test(version) for c in comps):
        return False
    if not version.is_prerelease:
        return True
    # npm: a pre-release is allowed only when a comparator of this set names a
    # pre-release of the same major.minor.patch (`>=1.5.0-rc.1` allows 1.5.0-rc.2).
    return any(
        c.version.is_prerelease and c.version.prerelease != _FLOOR and
        c.version.release == version.release
        for c in comps
    )

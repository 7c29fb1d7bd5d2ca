"""SemVer 2.0 versions and npm-style ranges.

Kept dependency-free because the client's hot path (`mx install` of something
already cached) imports it.

Semantics are node-semver's (the npm `semver` package) with its default options:
strict parsing (no leading zeros, no `1.2.3beta`) and pre-releases excluded
unless a range names them. tests/test_semver.py checks mx against every verdict
in tests/data/semver-npm-corpus.json, which scripts/semver-corpus.js writes from
npm's own package. To agree with npm at the edges of the grammar too (build
metadata anywhere, `v=` prefixes, whitespace after operators), a range is read
the way node-semver reads it: the same regular expressions (including the
length bounds of its `safeRe`), and the same rewriting steps from sugar (`^1.2`,
`1.x`, `1 - 2`) down to plain comparators, in the same order. Comments name the
node-semver function each step mirrors.

The pre-release rule: a pre-release version matches a comparator set only if
some comparator in the set names a pre-release of the same `major.minor.patch`
(`>=1.5.0-rc.1` allows 1.5.0-rc.2, not 1.6.0-rc.1; `>=2.0.0-0` allows
2.0.0-alpha). The `-0` that desugaring puts on upper bounds (`^1.2` is
`>=1.2.0 <2.0.0-0`) names one too, but nothing of 2.0.0 sorts below 2.0.0-0, so
it admits nothing: no comparator needs special treatment.

One deliberate difference: node-semver compares numeric pre-release
identifiers as JavaScript numbers, so above 2**53 distinct identifiers can
compare equal; mx compares them as exact integers.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_MAX_LENGTH = 256  # node-semver rejects longer versions
_MAX_SAFE_BUILD_LENGTH = _MAX_LENGTH - 6
_MAX_SAFE_INTEGER = 2**53 - 1  # Number.MAX_SAFE_INTEGER: larger components are invalid

# JavaScript's `\s` and String.prototype.trim() use this set, not Python's
# (which adds U+001C..U+001F and U+0085 and lacks U+FEFF).
_JS_SPACE_CHARS = ("\t\n\v\f\r \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
                   + "\u2028\u2029\u202f\u205f\u3000\ufeff")
_JS_SPACE_CLASS_BODY = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


def _trim(text: str) -> str:
    return text.strip(_JS_SPACE_CHARS)


# --- node-semver's regular expressions (internal/re.js), strict forms only ---------

_LETTERDASHNUMBER = "[a-zA-Z0-9-]"


def _js_regex(src: str) -> re.Pattern[str]:
    """Compile a node-semver source pattern as its `safeRe`, with JavaScript's meaning.

    makeSafeRegex bounds `\\s*`, `\\d+`... (`\\s*` becomes at most one space); then
    `\\s` and `\\d` are spelled out (Python's are Unicode-aware), and `$` becomes `\\Z`
    (Python's `$` also matches before a trailing newline).
    """
    for token, limit in ((r"\s", 1), (r"\d", _MAX_LENGTH),
                         (_LETTERDASHNUMBER, _MAX_SAFE_BUILD_LENGTH)):
        src = (src.replace(token + "*", f"{token}{{0,{limit}}}")
                  .replace(token + "+", f"{token}{{1,{limit}}}"))
    return _compile_unbounded(src)


def _compile_unbounded(src: str) -> re.Pattern[str]:
    # The one character class that holds `\s` gets the characters, not a nested class.
    src = src.replace(r"[v=\s]", f"[v={_JS_SPACE_CLASS_BODY}]")
    src = src.replace(r"\s", f"[{_JS_SPACE_CLASS_BODY}]").replace(r"\d", "[0-9]")
    return re.compile(src.replace("$", r"\Z"))


_NUMERIC_ID = r"0|[1-9]\d*"
_NUMERIC_ID_LOOSE = r"\d+"
_NON_NUMERIC_ID = rf"\d*[a-zA-Z-]{_LETTERDASHNUMBER}*"
_MAIN_VERSION = rf"({_NUMERIC_ID})\.({_NUMERIC_ID})\.({_NUMERIC_ID})"
_MAIN_VERSION_LOOSE = rf"({_NUMERIC_ID_LOOSE})\.({_NUMERIC_ID_LOOSE})\.({_NUMERIC_ID_LOOSE})"
_PRE_ID = rf"(?:{_NON_NUMERIC_ID}|{_NUMERIC_ID})"
_PRE_ID_LOOSE = rf"(?:{_NON_NUMERIC_ID}|{_NUMERIC_ID_LOOSE})"
_PRERELEASE = rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))"
_PRERELEASE_LOOSE = rf"(?:-?({_PRE_ID_LOOSE}(?:\.{_PRE_ID_LOOSE})*))"
_BUILD_ID = rf"{_LETTERDASHNUMBER}+"
_BUILD = rf"(?:\+({_BUILD_ID}(?:\.{_BUILD_ID})*))"
_FULL_PLAIN = rf"v?{_MAIN_VERSION}{_PRERELEASE}?{_BUILD}?"
_LOOSE_PLAIN = rf"[v=\s]*{_MAIN_VERSION_LOOSE}{_PRERELEASE_LOOSE}?{_BUILD}?"
_GTLT = r"((?:<|>)?=?)"
_XRANGE_ID = rf"{_NUMERIC_ID}|x|X|\*"
_XRANGE_PLAIN = (rf"[v=\s]*({_XRANGE_ID})(?:\.({_XRANGE_ID})(?:\.({_XRANGE_ID})"
                 rf"(?:{_PRERELEASE})?{_BUILD}?)?)?")


@dataclass(frozen=True)
class _Regexes:
    xrange: re.Pattern[str]
    tilde_trim: re.Pattern[str]
    tilde: re.Pattern[str]
    caret_trim: re.Pattern[str]
    caret: re.Pattern[str]
    comparator: re.Pattern[str]
    comparator_trim: re.Pattern[str]
    hyphen_range: re.Pattern[str]
    star: re.Pattern[str]
    gte0: re.Pattern[str]
    build_once: re.Pattern[str]
    build_strip: re.Pattern[str]


@functools.cache
def _full_version() -> re.Pattern[str]:
    return _js_regex(rf"^{_FULL_PLAIN}$")


@functools.cache
def _rx() -> _Regexes:
    # Compiled on first use, not at import: together they take tens of milliseconds,
    # and most importers (manifest, index builder) parse versions, never a range.
    return _Regexes(
        xrange=_js_regex(rf"^{_GTLT}\s*{_XRANGE_PLAIN}$"),
        tilde_trim=_js_regex(r"(\s*)(?:~>?)\s+"),
        tilde=_js_regex(rf"^(?:~>?){_XRANGE_PLAIN}$"),
        caret_trim=_js_regex(r"(\s*)(?:\^)\s+"),
        caret=_js_regex(rf"^(?:\^){_XRANGE_PLAIN}$"),
        comparator=_js_regex(rf"^{_GTLT}\s*({_FULL_PLAIN})$|^$"),
        # node-semver now runs a hand-written scanner (trim-comparator-whitespace.js)
        # documented to reproduce this pattern's replacements, only faster.
        comparator_trim=_js_regex(rf"(\s*){_GTLT}\s*({_LOOSE_PLAIN}|{_XRANGE_PLAIN})"),
        hyphen_range=_js_regex(rf"^\s*({_XRANGE_PLAIN})\s+-\s+({_XRANGE_PLAIN})\s*$"),
        star=_js_regex(r"(<|>)?=?\s*\*"),
        gte0=_js_regex(r"^\s*>=\s*0\.0\.0\s*$"),
        build_once=_js_regex(_BUILD),
        # Range.parseRange strips build metadata with the unbounded pattern.
        build_strip=_compile_unbounded(_BUILD),
    )


# Range's constructor collapses, and parseRange splits on, unbounded whitespace.
_SPACES = _compile_unbounded(r"\s+")
_NUMERIC = re.compile(r"[0-9]+")


class InvalidVersion(ValueError):
    pass


class InvalidRange(ValueError):
    pass


@functools.total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        m = _full_version().match(_trim(text)) if len(text) <= _MAX_LENGTH else None
        if not m:
            raise InvalidVersion(f"{text!r} is not a SemVer version (MAJOR.MINOR.PATCH)")
        major, minor, patch = int(m[1]), int(m[2]), int(m[3])
        if max(major, minor, patch) > _MAX_SAFE_INTEGER:
            raise InvalidVersion(f"{text!r}: version numbers stop at {_MAX_SAFE_INTEGER}")
        pre = tuple(m[4].split(".")) if m[4] else ()
        build = tuple(m[5].split(".")) if m[5] else ()
        return cls(major, minor, patch, pre, build)

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def _key(self) -> tuple[tuple[int, int, int], int, tuple[tuple[int, int, str], ...]]:
        # A release sorts after all of its pre-releases; numeric identifiers
        # sort before alphanumeric ones (SemVer 2.0, section 11).
        ids = tuple((0, int(p), "") if _NUMERIC.fullmatch(p) else (1, 0, p)
                    for p in self.prerelease)
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


@dataclass(frozen=True)
class Comparator:
    op: str  # one of < <= > >= =
    version: Version  # never with build metadata: ranges drop it

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
        # node-semver's Comparator.value: `=` is written as nothing.
        return f"{'' if self.op == '=' else self.op}{self.version}"


_NULL_SET = "<0.0.0-0"  # matches nothing: what `<*` and `>*` become


@dataclass(frozen=True)
class Range:
    text: str
    # Alternatives (`||`), each a conjunction of comparators; an empty one matches
    # any release (node-semver's `*`, Comparator.ANY).
    sets: tuple[tuple[Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Range:
        # Range's constructor: collapse whitespace, split on `||`, and tidy up the
        # alternatives (a match-nothing one is dropped beside others; `*` absorbs all).
        raw = _SPACES.sub(" ", _trim(text))
        sets = [_parse_set(text, _trim(part)) for part in raw.split("||")]
        if len(sets) > 1:
            sets = [s for s in sets if not _is_null(s)] or sets[:1]
            if () in sets:
                sets = [()]
        return cls(text, tuple(sets))

    @property
    def normalized(self) -> str:
        """The range as plain comparators: node-semver's `validRange` output."""
        return "||".join(" ".join(str(c) for c in s) for s in self.sets) or "*"

    def contains(self, version: Version) -> bool:
        return any(_set_matches(s, version) for s in self.sets)

    def best(self, versions: list[Version]) -> Version | None:
        """The highest version in range; among equals (builds) the first listed, as npm."""
        ok = [v for v in versions if self.contains(v)]
        return max(ok) if ok else None

    def __str__(self) -> str:
        return self.text


def _is_null(comps: tuple[Comparator, ...]) -> bool:
    return bool(comps) and str(comps[0]) == _NULL_SET


def _set_matches(comps: tuple[Comparator, ...], version: Version) -> bool:
    # node-semver's testSet.
    if not all(c.test(version) for c in comps):
        return False
    if not version.is_prerelease:
        return True
    return any(c.version.is_prerelease and c.version.release == version.release
               for c in comps)


def _parse_set(whole: str, part: str) -> tuple[Comparator, ...]:
    # Range.parseRange: rewrite one alternative into space-separated comparators.
    part = _rx().build_strip.sub("", part)
    part = _rx().hyphen_range.sub(_hyphen_replace, part, count=1)
    part = _rx().comparator_trim.sub(r"\1\2\3", part)  # `> 1.2` -> `>1.2`
    part = _rx().tilde_trim.sub(r"\1~", part)  # `~ 1.2` -> `~1.2`
    part = _rx().caret_trim.sub(r"\1^", part)  # `^ 1.2` -> `^1.2`
    desugared = " ".join(_parse_comparator(c) for c in part.split(" "))
    texts = [_replace_gte0(c) for c in _SPACES.split(desugared)]
    comparators = [_comparator(whole, c) for c in texts]
    # A match-nothing comparator makes the whole set match nothing; duplicates go, and
    # `*` (None) goes beside anything else.
    unique: dict[str, Comparator | None] = {}
    for comp in comparators:
        if comp is not None and str(comp) == _NULL_SET:
            return (comp,)
        unique[str(comp or "")] = comp
    return tuple(c for c in unique.values() if c is not None)


def _comparator(whole: str, text: str) -> Comparator | None:
    # Comparator.parse; None is Comparator.ANY (from `*`, `x`, an empty range).
    text = " ".join(_SPACES.split(_trim(text)))
    m = _rx().comparator.match(text)
    if not m:
        raise InvalidRange(f"{whole!r}: cannot read {text!r} as a comparator")
    if not m[2]:
        return None
    try:
        version = Version.parse(m[2])
    except InvalidVersion as exc:
        raise InvalidRange(f"{whole!r}: {exc}") from None
    op = m[1] if m[1] else "="
    return Comparator(op, Version(*version.release, version.prerelease))


def _is_x(part: str | None) -> bool:
    return not part or part in ("x", "X", "*")


def _inc(number: str) -> str:
    return str(int(number) + 1)


def _parse_comparator(comp: str) -> str:
    # parseComparator: carets, then tildes, then x-ranges, then stars.
    comp = _rx().build_once.sub("", comp, count=1)
    comp = " ".join(_rx().caret.sub(_replace_caret, c, count=1) for c in _SPACES.split(_trim(comp)))
    comp = " ".join(_rx().tilde.sub(_replace_tilde, c, count=1) for c in _SPACES.split(_trim(comp)))
    comp = " ".join(_replace_xrange(c) for c in _SPACES.split(comp))
    return _rx().star.sub("", _trim(comp), count=1)


def _replace_caret(m: re.Match[str]) -> str:
    # ^1.2.3 := >=1.2.3 <2.0.0-0; ^0.2.3 := >=0.2.3 <0.3.0-0; ^0.0.3 := >=0.0.3 <0.0.4-0
    major, minor, patch, pre = m[1], m[2], m[3], m[4]
    if _is_x(major):
        return ""
    if _is_x(minor):
        return f">={major}.0.0 <{_inc(major)}.0.0-0"
    if _is_x(patch):
        if major == "0":
            return f">={major}.{minor}.0 <{major}.{_inc(minor)}.0-0"
        return f">={major}.{minor}.0 <{_inc(major)}.0.0-0"
    low = f">={major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
    if major == "0":
        if minor == "0":
            return f"{low} <{major}.{minor}.{_inc(patch)}-0"
        return f"{low} <{major}.{_inc(minor)}.0-0"
    return f"{low} <{_inc(major)}.0.0-0"


def _replace_tilde(m: re.Match[str]) -> str:
    # ~1 := >=1.0.0 <2.0.0-0; ~1.2 and ~1.2.3 := >=1.2.x <1.3.0-0
    major, minor, patch, pre = m[1], m[2], m[3], m[4]
    if _is_x(major):
        return ""
    if _is_x(minor):
        return f">={major}.0.0 <{_inc(major)}.0.0-0"
    if _is_x(patch):
        return f">={major}.{minor}.0 <{major}.{_inc(minor)}.0-0"
    low = f">={major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
    return f"{low} <{major}.{_inc(minor)}.0-0"


def _replace_xrange(comp: str) -> str:
    comp = _trim(comp)

    def replace(m: re.Match[str]) -> str:
        gtlt, major, minor, patch = m[1], m[2], m[3], m[4]
        # `x.1` and `1.x.3` are left as they are, and so fail as comparators.
        if (_is_x(major) and not _is_x(minor)) or (_is_x(minor) and not _is_x(patch)):
            return comp
        x_major = _is_x(major)
        x_minor = x_major or _is_x(minor)
        any_x = x_minor or _is_x(patch)
        if gtlt == "=" and any_x:
            gtlt = ""
        if x_major:
            return _NULL_SET if gtlt in (">", "<") else "*"
        if gtlt and any_x:
            # An operator with a partial version: the x's become zeros, and the bound
            # moves past the whole partial for `>` and `<=` (`<=1.2` := `<1.3.0-0`).
            lo_minor, lo_patch = ("0" if x_minor else minor), "0"
            if gtlt == ">":
                gtlt = ">="
                if x_minor:
                    major, lo_minor = _inc(major), "0"
                else:
                    lo_minor = _inc(minor)
            elif gtlt == "<=":
                gtlt = "<"
                if x_minor:
                    major = _inc(major)
                else:
                    lo_minor = _inc(minor)
            pre = "-0" if gtlt == "<" else ""
            return f"{gtlt}{major}.{lo_minor}.{lo_patch}{pre}"
        if x_minor:
            return f">={major}.0.0 <{_inc(major)}.0.0-0"
        if any_x:
            return f">={major}.{minor}.0 <{major}.{_inc(minor)}.0-0"
        return m[0]

    return _rx().xrange.sub(replace, comp, count=1)


def _replace_gte0(comp: str) -> str:
    return _rx().gte0.sub("", _trim(comp), count=1)  # `>=0.0.0` is `*`


def _hyphen_replace(m: re.Match[str]) -> str:
    # `1.2 - 3.4` := `>=1.2.0 <3.5.0-0`; a full upper bound is inclusive.
    low, l_major, l_minor, l_patch = m[1], m[2], m[3], m[4]
    high, h_major, h_minor, h_patch, h_pre = m[7], m[8], m[9], m[10], m[11]
    if _is_x(l_major):
        low = ""
    elif _is_x(l_minor):
        low = f">={l_major}.0.0"
    elif _is_x(l_patch):
        low = f">={l_major}.{l_minor}.0"
    else:
        low = f">={low}"  # as written, `v`/`=` prefix included
    if _is_x(h_major):
        high = ""
    elif _is_x(h_minor):
        high = f"<{_inc(h_major)}.0.0-0"
    elif _is_x(h_patch):
        high = f"<{h_major}.{_inc(h_minor)}.0-0"
    elif h_pre:
        high = f"<={h_major}.{h_minor}.{h_patch}-{h_pre}"
    else:
        high = f"<={high}"
    return _trim(f"{low} {high}")

from __future__ import annotations

import pytest

from mx.semver import InvalidRange, InvalidVersion, Range, Version


def v(text: str) -> Version:
    return Version.parse(text)


def test_precedence_follows_semver_2() -> None:
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
             "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0", "2.0.0"]
    assert sorted(order, key=Version.parse) == order
    assert v("1.0.0+build.5") == v("1.0.0")


@pytest.mark.parametrize("bad", ["1.0", "01.0.0", "1.0.0-", "a.b.c", "1.0.0-01", ""])
def test_invalid_versions(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        Version.parse(bad)


@pytest.mark.parametrize(("rng", "yes", "no"), [
    ("^1.4", ["1.4.0", "1.9.9"], ["1.3.9", "2.0.0", "2.0.0-rc.1", "1.5.0-rc.1"]),
    ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
    ("^0.0.3", ["0.0.3"], ["0.0.4"]),
    ("~1.4.2", ["1.4.2", "1.4.9"], ["1.5.0", "1.4.1"]),
    ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
    (">=1.2 <2", ["1.2.0", "1.99.0"], ["1.1.9", "2.0.0"]),
    ("1.4.0", ["1.4.0"], ["1.4.1"]),
    ("=1.4.0", ["1.4.0"], ["1.4.1"]),
    ("1.x", ["1.0.0", "1.8.1"], ["2.0.0", "0.9.0"]),
    ("1.2", ["1.2.0", "1.2.7"], ["1.3.0"]),
    ("*", ["0.0.1", "9.9.9"], ["1.0.0-rc.1"]),
    ("1.2.3 - 2.3", ["1.2.3", "2.3.9"], ["2.4.0", "1.2.2"]),
    ("<1.2 || >=3", ["1.1.9", "3.0.0"], ["1.2.0", "2.5.0"]),
    (">1.2", ["1.3.0"], ["1.2.9"]),
    ("<=1.2", ["1.2.9"], ["1.3.0"]),
    ("^1.5.0-rc.1", ["1.5.0-rc.1", "1.5.0-rc.2", "1.5.0", "1.6.0"], ["1.6.0-rc.1", "1.5.0-beta"]),
    (">= 1.2.0", ["1.2.0"], ["1.1.0"]),
])
def test_ranges_follow_npm(rng: str, yes: list[str], no: list[str]) -> None:
    r = Range.parse(rng)
    for text in yes:
        assert r.contains(v(text)), f"{rng} should contain {text}"
    for text in no:
        assert not r.contains(v(text)), f"{rng} should not contain {text}"


def test_best_picks_highest_match() -> None:
    versions = [v(t) for t in ["1.3.0", "1.4.0", "1.4.5", "1.5.0-rc.1", "2.0.0"]]
    assert Range.parse("^1.4").best(versions) == v("1.4.5")
    assert Range.parse("^3").best(versions) is None


@pytest.mark.parametrize("bad", ["^", ">=foo", "1.2.3.4", "~>"])
def test_invalid_ranges(bad: str) -> None:
    with pytest.raises(InvalidRange):
        Range.parse(bad)

"""Choose a version from a model document: ranges, channels, pre-releases and yanks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mx.client.spec import Requirement, is_channel_name
from mx.errors import ResolveError
from mx.names import DEFAULT_VARIANT
from mx.semver import Range, Version


@dataclass
class Resolution:
    name: str
    version: str
    record: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def resolve(doc: dict[str, Any], req: Requirement) -> Resolution:
    versions = {Version.parse(v): v for v in doc["versions"]}
    yanked = {v for v, key in versions.items() if doc["versions"][key].get("yanked")}
    sel = req.selector
    if sel == "latest":
        pool = [v for v in versions if v not in yanked]
        stable = [v for v in pool if not v.is_prerelease]
        pick = max(stable or pool, default=None)
        if pick is None:
            raise ResolveError(f"{req.name}: every version is yanked",
                               hint="pin an exact version to install a yanked one anyway")
        return _done(doc, req, versions[pick])
    if is_channel_name(sel):
        channels = doc.get("channels") or {}
        if sel not in channels:
            known = ", ".join(sorted(channels)) or "none"
            raise ResolveError(f"{req.name}: no channel {sel!r} (channels: {known})",
                               hint="ask for a version range such as ^1.2, or latest")
        return _done(doc, req, channels[sel], via=f"channel {sel}")
    rng = Range.parse(sel)
    exact = _exact(sel)
    if exact is not None and exact in versions:
        res = _done(doc, req, versions[exact])
        if exact in yanked:
            reason = doc["versions"][versions[exact]].get("yanked_reason") or "no reason given"
            res.warnings.append(f"{req.name} {exact} is yanked: {reason}")
        return res
    pick = rng.best([v for v in versions if v not in yanked])
    if pick is None:
        have = ", ".join(str(v) for v in sorted(versions)[-8:]) or "none"
        only_yanked = rng.best(list(yanked))
        hint = (f"{only_yanked} matches but is yanked; pin it exactly to install it anyway"
                if only_yanked else "widen the range, or check `mx info " + req.name + "`")
        raise ResolveError(f"{req.name}: no version matches {sel!r} (versions: {have})",
                           hint=hint)
    return _done(doc, req, versions[pick])


def _exact(selector: str) -> Version | None:
    text = selector.strip().lstrip("=").strip()
    try:
        return Version.parse(text)
    except ValueError:
        return None


def _done(doc: dict[str, Any], req: Requirement, version: str, via: str | None = None
          ) -> Resolution:
    record = doc["versions"].get(version)
    if record is None:
        raise ResolveError(f"{req.name}: {via or 'selector'} names {version}, which the index "
                           "does not list")
    res = Resolution(req.name, version, record)
    if via and record.get("yanked"):
        res.warnings.append(f"{req.name} {version} ({via}) is yanked: "
                            f"{record.get('yanked_reason') or 'no reason given'}")
    return res


def select_artifacts(res: Resolution, variant: str | None, fmt: str | None
                     ) -> tuple[str, list[dict[str, Any]]]:
    """The variant to install and its artifacts (optionally one format only)."""
    arts: list[dict[str, Any]] = res.record["artifacts"]
    variants = sorted({a.get("variant", DEFAULT_VARIANT) for a in arts})
    if variant is None:
        only = variants[0] if len(variants) == 1 else None
        variant = DEFAULT_VARIANT if DEFAULT_VARIANT in variants else only
        if variant is None:
            raise ResolveError(f"{res.name} {res.version} has variants {', '.join(variants)} "
                               "and none is fp32", hint="pick one with --variant")
    chosen = [a for a in arts if a.get("variant", DEFAULT_VARIANT) == variant]
    if not chosen:
        raise ResolveError(f"{res.name} {res.version} has no variant {variant!r} "
                           f"(variants: {', '.join(variants)})", hint="pick one with --variant")
    if fmt is not None:
        formats = sorted({a["format"] for a in chosen})
        chosen = [a for a in chosen if a["format"] == fmt]
        if not chosen:
            raise ResolveError(f"{res.name} {res.version} variant {variant} has no format "
                               f"{fmt!r} (formats: {', '.join(formats)})",
                               hint="pick one with --format")
    return variant, chosen

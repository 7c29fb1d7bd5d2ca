"""Card checks: front matter as the Hub reads it, required sections, licenses agree.

`card_problems` works on the card's text alone, so the index builder runs the same
checks on a card read from a release tag as `mx validate` does on a work tree.
"""

from __future__ import annotations

from mx.card import parse_card
from mx.cardrules import DEFAULT_POLICY, CardPolicy, section_problems
from mx.errors import ConfigError
from mx.manifest import LoadedManifest
from mx.validate import Problem


def check(loaded: LoadedManifest, policy: CardPolicy = DEFAULT_POLICY) -> list[Problem]:
    m = loaded.manifest
    path = loaded.path.parent / m.card
    shown = str(path)
    if not path.is_file():
        return [Problem(str(loaded.path), None,
                        f"card: {m.card} does not exist (write it, or fix `card:`)")]
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        return [Problem(shown, None, f"not UTF-8 text (byte {exc.start})")]
    return [Problem(where, line, msg)
            for where, line, msg in card_problems(text, shown, m.license, policy)]


def card_problems(text: str, shown: str, manifest_license: str,
                  policy: CardPolicy = DEFAULT_POLICY) -> list[tuple[str, int | None, str]]:
    """(path, line, message) for every problem of the card `shown`, in file order."""
    try:
        card = parse_card(text, shown)
    except ConfigError as exc:
        p = Problem.of(exc, shown)
        return [(p.path, p.line, p.message)]
    problems: list[tuple[str, int | None, str]] = [
        (shown, line, msg) for line, msg in card.meta_problems]
    licenses = card.meta.licenses
    wanted = manifest_license.lower()
    if not licenses:
        if not any(msg.startswith("front matter license:") for _, msg in card.meta_problems):
            problems.append((shown, card.meta_line, "front matter has no license (the "
                                                    f"manifest says {manifest_license!r})"))
    elif wanted not in {lic.lower() for lic in licenses} and not (
            # license: other with license_name names a license the Hub does not list
            "other" in licenses and (card.meta.license_name or "").lower() == wanted):
        written = licenses[0] if len(licenses) == 1 else licenses
        problems.append((shown, card.line_of("license"), f"license {written!r} disagrees "
                                                         f"with mx.yaml license "
                                                         f"{manifest_license!r}"))
    problems += [(shown, line, msg) for line, msg in section_problems(card, policy)]
    return sorted(problems, key=lambda p: p[1] or 0)

"""Card checks: front matter parses, required sections are there, licenses agree."""

from __future__ import annotations

from mx.card import parse_card, section_problems
from mx.errors import ConfigError
from mx.manifest import LoadedManifest
from mx.validate import Problem, _split_located


def check(loaded: LoadedManifest) -> list[Problem]:
    m = loaded.manifest
    model_dir = loaded.path.parent
    path = model_dir / m.card
    shown = str(path)
    if not path.is_file():
        return [Problem(str(loaded.path), None,
                        f"card: {m.card} does not exist (write it, or fix `card:`)")]
    try:
        card = parse_card(path.read_text(encoding="utf-8"), shown)
    except UnicodeDecodeError:
        return [Problem(shown, None, "not UTF-8 text")]
    except ConfigError as exc:
        where, line, message = _split_located(str(exc))
        return [Problem(where, line, message)]
    problems = [Problem(shown, line, msg) for line, msg in section_problems(card)]
    if card.meta.license is None:
        problems.append(Problem(shown, 1, f"front matter has no license (the manifest says "
                                          f"{m.license!r})"))
    elif card.meta.license.lower() != m.license.lower():
        problems.append(Problem(shown, 1, f"license {card.meta.license!r} disagrees with "
                                          f"mx.yaml license {m.license!r}"))
    return problems

"""`ns/name@selector`: what a user asks `mx install` for."""

from __future__ import annotations

from dataclasses import dataclass

from mx.errors import ConfigError
from mx.names import check_model_name
from mx.semver import InvalidRange, Range


@dataclass(frozen=True)
class Requirement:
    name: str
    selector: str  # a range, an exact version, a channel name, or "latest"

    def __str__(self) -> str:
        return f"{self.name}@{self.selector}"


def parse_requirement(text: str, default: str = "latest") -> Requirement:
    name, _, selector = text.strip().partition("@")
    try:
        check_model_name(name)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="ask for a model as ns/name or ns/name@^1.2") from None
    selector = selector.strip() or default
    if not is_channel_name(selector):
        try:
            Range.parse(selector)
        except InvalidRange as exc:
            raise ConfigError(f"{text!r}: {exc}",
                              hint="use a range such as ^1.2, ~1.4.2, >=1.2 <2, 1.4.0, "
                                   "a channel name, or latest") from None
    return Requirement(name, selector)


def is_channel_name(selector: str) -> bool:
    """Channel names are words (`stable`, `canary`); ranges start with a digit or operator."""
    return selector[:1].isalpha() and selector[:1] not in "vxX" and " " not in selector

"""One error root for everything a user can fix.

The CLI catches `MxError` once, at the top, prints its one-line message and its
hint, and exits 1. Anything else that escapes is a bug (exit 3).
"""

from __future__ import annotations


class MxError(Exception):
    """An error the user can act on: one line that names the file, field or value."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def with_hint(self) -> str:
        """The message and its hint in one line, for a caller that lists problems (`mx
        validate`, a skipped release) and would otherwise lose the hint."""
        return f"{self.message}; {self.hint}" if self.hint else self.message


class ConfigError(MxError):
    """A file or setting the user wrote is malformed.

    `path` and `line` say where when they are known, and `detail` is the message without
    them, so a caller that lists problems (`mx validate`) needs no parsing of the text."""

    def __init__(self, message: str, hint: str | None = None, *, path: str | None = None,
                 line: int | None = None) -> None:
        detail = message
        if path is not None:
            message = f"{path}:{line}: {detail}" if line else f"{path}: {detail}"
        super().__init__(message, hint)
        self.path = path
        self.line = line
        self.detail = detail


class ValidationFailed(MxError):
    """`mx validate` found problems (each already reported)."""


class GitError(MxError):
    """A git repository, ref or object is missing or unreadable."""


class ResolveError(MxError):
    """No version of a model satisfies what was asked for."""


class FetchError(MxError):
    """A download failed: network, HTTP status, size cap.

    `status` is the HTTP status when a server answered with one (404 for a missing
    `file:` path too), `url` the address that failed."""

    def __init__(self, message: str, hint: str | None = None, *, url: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message, hint)
        self.url = url
        self.status = status


class SizeLimitError(FetchError):
    """A host sent (or announced) more bytes than the limit for that file."""


class TrustError(MxError):
    """The registry's signed metadata does not verify, or none is published."""


class IntegrityError(MxError):
    """Bytes do not match the sha256 or size they were promised to have."""


class IndexFormatError(MxError):
    """An index document is malformed or of a newer major format."""


class OfflineError(MxError):
    """Something needed is not in the cache and the network is off."""


class BuildError(MxError):
    """The index builder refused the registry state."""


# Families of one feature each, kept here with the rest so every error has one home.

class DvcProblem(MxError):
    """A release's DVC artifact cannot be published (the index builder skips the release)."""


class MissingFramework(MxError):
    """A framework an operation needs is not installed."""


class ConversionFailed(MxError):
    """The framework's exporter refused the model."""


class ParityFailed(MxError):
    """The converted artifact disagrees with the source framework."""


class TransformFailed(MxError):
    """onnxruntime's quantizer, converter or optimizer refused the model."""


class QualityTooLow(MxError):
    """A variant's quality is below what was asked for."""


class DeviceUnavailable(MxError):
    """The requested device (CUDA) is not usable by this backend here."""


class BadInput(MxError):
    """A request that does not fit the model's signature (HTTP 400)."""


class RunFailed(MxError):
    """onnxruntime refused the inputs it was given, or failed while running on them."""

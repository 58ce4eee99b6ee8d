"""Error classes of fawheels. Exit codes are API: one per class, stable across releases."""

from __future__ import annotations

INTERNAL_EXIT = 11  # a bug in fawheels: neither usage (2, argparse's) nor a failed verification (1)
USAGE_EXIT = 2  # argparse exits 2 for a bad command line; UsageError shares it


class FawheelsError(Exception):
    """Base class; `exit_code` is what the CLI exits with. Raised bare it is a bug: the internal code."""

    exit_code = INTERNAL_EXIT
    kind = "internal"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(FawheelsError):
    """A command-line value is malformed or a path given on it cannot be used (argparse's code)."""

    exit_code = USAGE_EXIT
    kind = "usage"


class InternalError(FawheelsError):
    """fawheels itself failed (an unexpected exception): a bug to report, not the user's input."""

    exit_code = INTERNAL_EXIT
    kind = "internal"


class ConfigError(FawheelsError):
    """The build matrix (or a command-line selection) is invalid. Raised before anything runs."""

    exit_code = 3
    kind = "config"


class ToolchainError(FawheelsError):
    """A toolkit, torch or interpreter does not match what the target asks for."""

    exit_code = 4
    kind = "toolchain"


class SourceError(FawheelsError):
    """Download failed, hash mismatch, or a patch that no longer applies."""

    exit_code = 5
    kind = "source"


class BuildError(FawheelsError):
    """The compiler or linker failed, or the build was interrupted."""

    exit_code = 6
    kind = "build"


class VerifyError(FawheelsError):
    """A built artifact breaks the promises of its target."""

    exit_code = 1
    kind = "verify"


class InspectError(FawheelsError):
    """A file could not be read as a wheel, ELF object or fatbin."""

    exit_code = 7
    kind = "inspect"


class PublishError(FawheelsError):
    """The index refused the wheel, or the wheel may not be published."""

    exit_code = 8
    kind = "publish"


class ContainerError(FawheelsError):
    """No container engine is reachable, or the toolchain image is wrong."""

    exit_code = 9
    kind = "container"


class OverlayError(FawheelsError):
    """An extension may not go into (or come back out of) an installed distribution."""

    exit_code = 10
    kind = "overlay"


EXIT_CODES: dict[str, int] = {
    cls.kind: cls.exit_code
    for cls in (
        UsageError,
        InternalError,
        ConfigError,
        ToolchainError,
        SourceError,
        BuildError,
        VerifyError,
        InspectError,
        PublishError,
        ContainerError,
        OverlayError,
    )
}

"""The harness's small exception hierarchy.

Every error is a :class:`HarnessError`, so the CLI and the pytest plugin can turn any of them into one clear
line instead of a traceback. Timeouts say what was awaited, for how long, the last thing seen and a hint.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class ConfigError(HarnessError):
    """A setting, option or service name is invalid."""


class DockerUnavailable(HarnessError):
    """No Docker engine answers."""


class ImageMissing(HarnessError):
    """An image the run needs is neither present locally nor obtainable."""


class ImageBuildError(HarnessError):
    """Building an image (or the Debian base) failed."""


class ServiceStartError(HarnessError):
    """A service container could not be created or started."""


class VaultError(HarnessError):
    """A Vault step (init, unseal, bootstrap) failed."""


class ReadinessTimeout(ServiceStartError, TimeoutError):
    """A deadline passed while polling for a state.

    Args:
        what: what was awaited, e.g. ``"postgres to accept a login on 127.0.0.1:49153"``.
        waited: seconds waited.
        last_seen: the last observation (an exception text, a status, a value).
        hint: one sentence on what to check or change.
    """

    def __init__(self, what: str, waited: float, last_seen: str, hint: str) -> None:
        self.what = what
        self.waited = waited
        self.last_seen = last_seen
        self.hint = hint
        super().__init__(f"timed out after {waited:.1f}s waiting for {what}; last seen: {last_seen}. Hint: {hint}")


class ComposeError(HarnessError):
    """The compose stack cannot be started, found or used as asked (the message says what to do)."""

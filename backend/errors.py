"""The backend's exceptions: one root, and subclasses that say what went wrong and what to do.

Every class carries `status_code`, the HTTP status an API should answer with, so the API layer
can map them in one handler. No message ever contains a plaintext code.
"""

from __future__ import annotations

from typing import ClassVar

from contracts.errors import KamengError


class BackendError(KamengError):
    """Root of the backend's errors."""

    status_code: ClassVar[int] = 500


class ConfigError(BackendError):
    """The configuration is missing a value or holds a development secret outside development."""


class ChainUnavailable(BackendError):
    """The RPC node did not answer. Retry after `retry_after` seconds.

    Attributes:
        retry_after: Seconds after which a retry makes sense.
    """

    status_code: ClassVar[int] = 503

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# ------------------------------------------------------------------ vault


class VaultError(BackendError):
    """Root of the code vault's errors."""


class UploadRejected(VaultError):
    """A CSV upload failed validation; nothing was stored.

    Attributes:
        problems: (line number, reason) pairs, line numbers counting from 1. Line 0 means the
            whole file (for example, an empty file). At most `MAX_REPORTED` are kept.
        total: How many problems were found in all, which may exceed ``len(problems)``.
    """

    status_code: ClassVar[int] = 422
    MAX_REPORTED: ClassVar[int] = 1000

    def __init__(self, problems: list[tuple[int, str]], total: int | None = None) -> None:
        self.problems = problems[: self.MAX_REPORTED]
        self.total = len(problems) if total is None else total
        shown = "; ".join(
            f"line {line}: {reason}" if line else reason for line, reason in self.problems[:5]
        )
        more = f" (and {self.total - 5} more)" if self.total > 5 else ""
        super().__init__(f"upload rejected, nothing stored: {shown}{more}; fix the file and retry")


class UploadTooLarge(UploadRejected):
    """The CSV is over the configured size cap."""

    status_code: ClassVar[int] = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            [(0, f"file is {size} bytes, over the {limit}-byte limit; split it into smaller files")]
        )
        self.size = size
        self.limit = limit


class UnknownListing(VaultError):
    """The listing does not exist on-chain."""

    status_code: ClassVar[int] = 404


class UnknownUpload(VaultError):
    """No upload with that id belongs to the caller."""

    status_code: ClassVar[int] = 404


class NotListingOwner(VaultError):
    """The caller is not the listing's supplier."""

    status_code: ClassVar[int] = 403


class UploadInProgress(VaultError):
    """Another upload to the same listing is pending on-chain; recover or wait, then retry."""

    status_code: ClassVar[int] = 409


class CommitFailed(VaultError):
    """The chain refused the batch commitment (for example, the sku is not authorized).

    Nothing was stored when this is raised before the database write; the message says which.
    """

    status_code: ClassVar[int] = 409


class VaultKeyError(VaultError):
    """A record could not be decrypted: wrong master key, or the record was altered."""


# ------------------------------------------------------------------ releases and delivery


class ReleaseError(BackendError):
    """Root of the release errors."""


class ReleaseNotFound(ReleaseError):
    """No sealed release exists (yet) for the order."""

    status_code: ClassVar[int] = 404


class ReleaseInvalid(ReleaseError):
    """A release failed verification: tampered bytes, wrong key, or a code that does not match
    its on-chain commitment. Do not confirm the order; dispute it instead.

    Attributes:
        reason: A short machine-readable reason, such as ``digest-mismatch``.
    """

    status_code: ClassVar[int] = 422

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"release invalid ({reason}): {detail}")
        self.reason = reason


class KeyDerivationError(BackendError):
    """A buyer's order key could not be derived (for example, the buy transaction is unknown)."""

    status_code: ClassVar[int] = 404


class DeliveryError(BackendError):
    """The delivery agent could not do its job; the message says why."""


# ------------------------------------------------------------------ hostile input


class JsonTooDeep(BackendError):
    """A JSON document nests arrays and objects deeper than `backend.limits.MAX_JSON_DEPTH`.

    Raised before the document is parsed, so a hostile one costs a linear scan, not the stack.

    Attributes:
        depth: How deep the document nests.
        limit: The most levels accepted.
    """

    status_code: ClassVar[int] = 422

    def __init__(self, what: str, depth: int, limit: int) -> None:
        super().__init__(
            f"{what} nests arrays and objects {depth} levels deep; at most {limit} levels are "
            "accepted: send a flatter document"
        )
        self.depth = depth
        self.limit = limit

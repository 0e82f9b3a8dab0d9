"""Errors of the evidence package, rooted at `contracts.errors.KamengError`."""

from __future__ import annotations

from contracts.errors import KamengError


class EvidenceError(KamengError):
    """Root of the evidence package's errors."""


class BundleFormatError(EvidenceError):
    """A bundle is not well-formed: not JSON, not canonical, or not the bundle schema.

    Attributes:
        claim: The checklist claim that fails (``json``, ``canonical``, ``schema``).
        detail: What is wrong, where.
    """

    def __init__(self, claim: str, detail: str) -> None:
        self.claim = claim
        self.detail = detail
        super().__init__(f"{claim}: {detail}")


class BundleBuildError(EvidenceError):
    """A bundle cannot be built: the order is unknown on-chain, or the chain lacks a fact."""


class AdditionRejected(EvidenceError):
    """A party's addition was refused: wrong party, wrong key, or codes outside the order."""


class UnknownOrder(BundleBuildError, AdditionRejected):
    """The order is not on the escrow (or not in the mirror yet)."""


class NotAParty(AdditionRejected):
    """The wallet is not the party the addition is for."""


class MirrorBehind(EvidenceError):
    """The indexer's mirror is too far behind the chain to say where an order's logs are.

    Attributes:
        retry_after: Seconds to wait before retrying.
    """

    retry_after = 5


class RulingRefused(EvidenceError):
    """The arbiter's ruling was not sent: the bundle does not verify, or the order is not
    disputed any more."""


class NotDisputed(AdditionRejected):
    """The vault discloses an order's codes only while the order is disputed."""


class FreshSignatureRequired(AdditionRejected):
    """Disclosing the vault's codes needs the supplier's signature over this very request."""

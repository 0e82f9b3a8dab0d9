"""The root exception of kameng and the chain-side errors."""

from __future__ import annotations


class KamengError(Exception):
    """Root of every error kameng raises on purpose. The message says what to do."""


class ToolchainError(KamengError):
    """The Solidity toolchain is missing or failed."""


class StaleArtifactsError(KamengError):
    """The committed artifacts do not match the Solidity sources."""


class ChainError(KamengError):
    """The node could not be reached or refused a request."""


class ContractRevertError(ChainError):
    """A transaction or call reverted with a named custom error.

    Attributes:
        name: The custom error's name, such as ``EscrowWrongState``.
        args: The decoded arguments.
    """

    def __init__(self, name: str, args: tuple[object, ...]) -> None:
        self.name = name
        self.args_ = args
        super().__init__(f"contract reverted with {name}{args!r}")

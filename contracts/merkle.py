"""A Merkle tree whose proofs verify with OpenZeppelin's `MerkleProof.verify`.

Pairs are hashed sorted (`keccak256(min(a, b) || max(a, b))`), as OpenZeppelin does, and an
odd node at the end of a layer moves up unchanged. Leaves are already double-hashed (see
`contracts.encoding.leaf`), so an inner node can never pass for a leaf.
"""

from __future__ import annotations

from eth_utils import keccak


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin's commutative keccak256 of two nodes."""
    return keccak(a + b) if a < b else keccak(b + a)


class MerkleTree:
    """A tree over a list of 32-byte leaves, kept whole so proofs are cheap to take."""

    def __init__(self, leaves: list[bytes]) -> None:
        """Build the tree.

        Raises:
            ValueError: there are no leaves, or a leaf is not 32 bytes.
        """
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        if any(len(x) != 32 for x in leaves):
            raise ValueError("every leaf must be 32 bytes")
        self.layers: list[list[bytes]] = [list(leaves)]
        while len(self.layers[-1]) > 1:
            layer = self.layers[-1]
            up = [hash_pair(layer[i], layer[i + 1]) for i in range(0, len(layer) - 1, 2)]
            if len(layer) % 2:
                up.append(layer[-1])
            self.layers.append(up)

    @property
    def root(self) -> bytes:
        """The root."""
        return self.layers[-1][0]

    def proof(self, position: int) -> list[bytes]:
        """The sibling path for the leaf at `position` (0-based within the tree).

        Raises:
            IndexError: no leaf at that position.
        """
        if not 0 <= position < len(self.layers[0]):
            raise IndexError(f"no leaf at position {position}")
        path: list[bytes] = []
        for layer in self.layers[:-1]:
            sibling = position ^ 1
            if sibling < len(layer):
                path.append(layer[sibling])
            position //= 2
        return path


def verify(proof: list[bytes], root: bytes, leaf_hash: bytes) -> bool:
    """Check a proof the way `MerkleProof.verify` does."""
    node = leaf_hash
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node == root

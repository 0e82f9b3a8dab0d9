// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ICodeEscrow} from "../src/interfaces/ICodeEscrow.sol";

/// @title Codes
/// @notice The harness's codes, commitments, batch roots and releases, built exactly as
///         docs/PROTOCOL.md describes ("Codes, commitments and batches", "Release v2"), so that
///         `proveBadCode` can be fuzzed with real proofs. Every code of listing L at index i is
///         derived from (L, i), so nothing needs storing.
library Codes {
    bytes14 internal constant DOMAIN = "kameng.code.v1";

    /// @notice Element kinds of a release.
    uint256 internal constant GOOD = 0; // the committed code
    uint256 internal constant WRONG = 1; // another code of the same length
    uint256 internal constant EMPTY = 2; // an empty ciphertext (not a code)
    uint256 internal constant LONG = 3; // a ciphertext longer than 256 bytes (not a code)

    /// @notice The code at `index` of `listingId`: 1 to 32 bytes.
    function code(uint256 listingId, uint256 index) internal pure returns (bytes memory c) {
        bytes32 h = keccak256(abi.encode("code", listingId, index));
        uint256 len = (uint256(h) % 32) + 1;
        c = new bytes(len);
        for (uint256 k; k < len; ++k) {
            c[k] = h[k];
        }
    }

    /// @notice The salt of that code.
    function salt(uint256 listingId, uint256 index) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", listingId, index));
    }

    /// @notice commitment = keccak256("kameng.code.v1" || salt || code).
    function commitment(uint256 listingId, uint256 index) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(DOMAIN, salt(listingId, index), code(listingId, index)));
    }

    /// @notice leaf = keccak256(keccak256(abi.encode(index, commitment))).
    function leaf(uint256 index, bytes32 committed) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(index, committed))));
    }

    /// @notice The leaves of a batch of `count` codes from `firstIndex`.
    function batchLeaves(uint256 listingId, uint256 firstIndex, uint256 count)
        internal
        pure
        returns (bytes32[] memory leaves)
    {
        leaves = new bytes32[](count);
        for (uint256 k; k < count; ++k) {
            leaves[k] = leaf(firstIndex + k, commitment(listingId, firstIndex + k));
        }
    }

    /// @notice OpenZeppelin sorted-pair hashing.
    function hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// @notice Merkle root over `leaves` in order; an odd node at the end of a layer moves up.
    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        uint256 n = leaves.length;
        bytes32[] memory layer = new bytes32[](n);
        for (uint256 k; k < n; ++k) {
            layer[k] = leaves[k];
        }
        while (n > 1) {
            uint256 m = (n + 1) / 2;
            for (uint256 k; k < n / 2; ++k) {
                layer[k] = hashPair(layer[2 * k], layer[2 * k + 1]);
            }
            if (n % 2 == 1) layer[m - 1] = layer[n - 1];
            n = m;
        }
        return layer[0];
    }

    /// @notice The proof of leaf `pos` under `root(leaves)`.
    function proof(bytes32[] memory leaves, uint256 pos) internal pure returns (bytes32[] memory out) {
        uint256 n = leaves.length;
        bytes32[] memory layer = new bytes32[](n);
        for (uint256 k; k < n; ++k) {
            layer[k] = leaves[k];
        }
        bytes32[] memory path = new bytes32[](64);
        uint256 depth;
        while (n > 1) {
            uint256 sibling = pos ^ 1;
            if (sibling < n) path[depth++] = layer[sibling];
            uint256 m = (n + 1) / 2;
            for (uint256 k; k < n / 2; ++k) {
                layer[k] = hashPair(layer[2 * k], layer[2 * k + 1]);
            }
            if (n % 2 == 1) layer[m - 1] = layer[n - 1];
            n = m;
            pos /= 2;
        }
        out = new bytes32[](depth);
        for (uint256 k; k < depth; ++k) {
            out[k] = path[k];
        }
    }

    /// @notice data XOR keystream(key, index); block b = keccak256(abi.encode(key, index, b)).
    function xorKeystream(bytes32 key, uint256 index, bytes memory data) internal pure returns (bytes memory out) {
        out = new bytes(data.length);
        bytes32 pad;
        for (uint256 k; k < data.length; ++k) {
            if (k % 32 == 0) pad = keccak256(abi.encode(key, index, k / 32));
            out[k] = data[k] ^ pad[k % 32];
        }
    }

    // ------------------------------------------------------------------ releases

    /// @notice A release is derived from a nonzero seed: its key, its sealed hash, and for
    ///         each code of the order an element of some kind. One seed in two is a dishonest
    ///         release (each element of it is WRONG, EMPTY or LONG with probability 1/2).
    function releaseKey(uint256 seed) internal pure returns (bytes32) {
        return keccak256(abi.encode("key", seed));
    }

    /// @notice The sealed release's bytes (what `deliverOnChain` publishes); only its hash is
    ///         bound by the digest, so any bytes serve.
    function sealedRelease(uint256 seed) internal pure returns (bytes memory) {
        return abi.encode("sealed", seed);
    }

    function sealedHash(uint256 seed) internal pure returns (bytes32) {
        return keccak256(sealedRelease(seed));
    }

    /// @notice keccak256(abi.encode(key)): the key's commitment in the digest.
    function keyHash(uint256 seed) internal pure returns (bytes32) {
        return keccak256(abi.encode(releaseKey(seed)));
    }

    function elementKind(uint256 seed, uint256 j) internal pure returns (uint256) {
        if (seed % 2 != 0) return GOOD;
        uint256 r = uint256(keccak256(abi.encode("kind", seed, j))) % 8;
        if (r == 0) return WRONG;
        if (r == 1) return EMPTY;
        if (r == 2) return LONG;
        if (r == 3) return WRONG;
        return GOOD;
    }

    /// @notice The salt and ciphertext of element j (index firstIndex + j) of a release.
    function element(uint256 seed, uint256 listingId, uint256 firstIndex, uint256 j)
        internal
        pure
        returns (bytes32 s, bytes memory ciphertext)
    {
        uint256 index = firstIndex + j;
        s = salt(listingId, index);
        uint256 kind = elementKind(seed, j);
        if (kind == EMPTY) return (s, "");
        if (kind == LONG) {
            uint256 len = 257 + (uint256(keccak256(abi.encode("len", seed, j))) % 40);
            ciphertext = new bytes(len);
            for (uint256 k; k < len; ++k) {
                ciphertext[k] = bytes1(uint8(k * 7 + j));
            }
            return (s, ciphertext);
        }
        bytes memory c = code(listingId, index);
        if (kind == WRONG) c[0] = c[0] ^ 0x01;
        ciphertext = xorKeystream(releaseKey(seed), index, c);
    }

    function elementLeaf(uint256 index, bytes32 s, bytes memory ciphertext) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(index, s, keccak256(ciphertext)))));
    }

    function elementLeaves(uint256 seed, uint256 listingId, uint256 firstIndex, uint256 quantity)
        internal
        pure
        returns (bytes32[] memory leaves)
    {
        leaves = new bytes32[](quantity);
        for (uint256 j; j < quantity; ++j) {
            (bytes32 s, bytes memory ct) = element(seed, listingId, firstIndex, j);
            leaves[j] = elementLeaf(firstIndex + j, s, ct);
        }
    }

    /// @notice releaseDigest = keccak256(abi.encode(sealedHash, elementRoot, keyHash)).
    function digestOf(bytes32 sealedHash_, bytes32 elementRoot, bytes32 keyHash_) internal pure returns (bytes32) {
        return keccak256(abi.encode(sealedHash_, elementRoot, keyHash_));
    }

    /// @notice releaseDigest = keccak256(abi.encode(sealedHash, elementRoot, keccak256(abi.encode(key)))).
    function digest(uint256 seed, uint256 listingId, uint256 firstIndex, uint256 quantity)
        internal
        pure
        returns (bytes32)
    {
        return digestOf(sealedHash(seed), root(elementLeaves(seed, listingId, firstIndex, quantity)), keyHash(seed));
    }

    /// @notice The release of `seed` as `deliverOnChain` publishes it (proofs left empty: the
    ///         escrow does not read them, the caller may set any).
    function published(uint256 seed, uint256 listingId, uint256 firstIndex, uint256 quantity)
        internal
        pure
        returns (ICodeEscrow.PublishedRelease memory r)
    {
        r.sealedRelease = sealedRelease(seed);
        r.elementRoot = root(elementLeaves(seed, listingId, firstIndex, quantity));
        r.keyHash = keyHash(seed);
    }

    /// @notice The digest a published release hashes to.
    function digestOf(ICodeEscrow.PublishedRelease memory r) internal pure returns (bytes32) {
        return digestOf(keccak256(r.sealedRelease), r.elementRoot, r.keyHash);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {ICodeEscrow} from "./interfaces/ICodeEscrow.sol";

/// @title BadCodeVerifier
/// @notice The pure checks of CodeEscrow kept out of its runtime code: the buyer's proof that a
///         released code is not the committed one (`CodeEscrow.proveBadCode`) and the bounds of
///         the platform settings (`CodeEscrow.setConfig` and its constructor). CodeEscrow deploys
///         one in its constructor and calls it, which keeps the escrow's runtime code under the
///         EIP-170 size limit. It holds no state and moves no value; it reverts with the escrow's
///         own errors, which the escrow passes on.
/// @dev Encodings are in docs/PROTOCOL.md ("Proof of a bad code"); the bounds in "Money",
///      "Windows".
contract BadCodeVerifier {
    uint256 private constant _MAX_CODE_BYTES = 256;
    bytes14 private constant _COMMITMENT_DOMAIN = "kameng.code.v1";
    uint256 private constant _BPS = 10_000;
    uint256 private constant _MAX_FEES_BPS = 5_000;
    uint256 private constant _MIN_DELIVERY_WINDOW = 1 minutes;
    uint256 private constant _MIN_DISPUTE_WINDOW = 1 hours;
    uint256 private constant _MAX_WINDOW = 365 days;
    uint256 private constant _MIN_ARBITRATION_WINDOW = 1 hours;
    uint256 private constant _MAX_ARBITRATION_WINDOW = 90 days;

    /// @notice Check platform settings against the escrow's bounds: a fee of at most 50%, a
    ///         minimum bond of at most 100%, a fee recipient, an arbitration window of 1 hour to
    ///         90 days, delivery windows from at least 1 minute and dispute windows from at least
    ///         1 hour, each maximum at least its minimum and at most 365 days. Reverts with
    ///         `EscrowBadBps`, `EscrowBadArgument("feeRecipient")` or `EscrowBadWindow(name, value,
    ///         min, max)`, in that order of checks; returns nothing when they hold.
    /// @param config The settings the escrow is asked to take.
    function checkConfig(ICodeEscrow.Config calldata config) external pure {
        if (config.feeBps > _MAX_FEES_BPS) revert ICodeEscrow.EscrowBadBps(config.feeBps);
        if (config.minBondBps > _BPS) revert ICodeEscrow.EscrowBadBps(config.minBondBps);
        if (config.feeRecipient == address(0)) revert ICodeEscrow.EscrowBadArgument("feeRecipient");
        _window("arbitrationWindow", config.arbitrationWindow, _MIN_ARBITRATION_WINDOW, _MAX_ARBITRATION_WINDOW);
        _window("minDeliveryWindow", config.minDeliveryWindow, _MIN_DELIVERY_WINDOW, _MAX_WINDOW);
        _window("maxDeliveryWindow", config.maxDeliveryWindow, config.minDeliveryWindow, _MAX_WINDOW);
        _window("minDisputeWindow", config.minDisputeWindow, _MIN_DISPUTE_WINDOW, _MAX_WINDOW);
        _window("maxDisputeWindow", config.maxDisputeWindow, config.minDisputeWindow, _MAX_WINDOW);
    }

    function _window(string memory name, uint256 value, uint256 min, uint256 max) private pure {
        if (value < min || value > max) revert ICodeEscrow.EscrowBadWindow(name, value, min, max);
    }

    /// @notice Check `proof` against an order's release digest and the cited batch.
    /// @param orderId The order (its low 32 bits are its first code index).
    /// @param quantity The order's number of codes.
    /// @param releaseDigest The digest the supplier posted with `deliver`.
    /// @param batch The batch `proof.batchIndex` names, as stored by the escrow.
    /// @param proof The buyer's proof.
    /// @return reason "bad-length-proven" (the element cannot be a committed code: its ciphertext
    ///         is empty or longer than 256 bytes) or "bad-code-proven" (it decrypts to something
    ///         other than the committed code).
    /// @return bundleHash What the ruling cites: keccak256(abi.encode(index, keccak256(ciphertext)))
    ///         for a bad length, keccak256(abi.encode(index, committed)) for a bad code.
    function verify(
        uint256 orderId,
        uint256 quantity,
        bytes32 releaseDigest,
        ICodeEscrow.Batch calldata batch,
        ICodeEscrow.BadCodeProof calldata proof
    ) external pure returns (bytes32 reason, bytes32 bundleHash) {
        // 1. The element is part of the release whose digest the supplier posted.
        bytes32 cipherHash = keccak256(proof.ciphertext);
        bytes32 elementLeaf = keccak256(bytes.concat(keccak256(abi.encode(proof.index, proof.salt, cipherHash))));
        bytes32 elementRoot = MerkleProof.processProofCalldata(proof.elementProof, elementLeaf);
        bytes32 digest = keccak256(abi.encode(proof.sealedHash, elementRoot, keccak256(abi.encode(proof.key))));
        if (digest != releaseDigest) revert ICodeEscrow.EscrowBadProof(orderId, "element");

        // 2. The index belongs to this order.
        uint256 firstIndex = orderId & type(uint32).max;
        if (proof.index < firstIndex || proof.index >= firstIndex + quantity) {
            revert ICodeEscrow.EscrowBadProof(orderId, "index");
        }

        // 2a. A commitment binds a code of 1 to 256 bytes and the keystream keeps the length, so
        //     a released element of any other length is not the committed code, whatever it is.
        uint256 length = proof.ciphertext.length;
        if (length == 0 || length > _MAX_CODE_BYTES) {
            return ("bad-length-proven", keccak256(abi.encode(proof.index, cipherHash)));
        }

        // 2b. The index belongs to the cited batch.
        if (proof.index < batch.firstIndex || proof.index >= uint256(batch.firstIndex) + batch.count) {
            revert ICodeEscrow.EscrowBadProof(orderId, "batch");
        }

        // 3. `committed` is what the batch root holds for this index.
        bytes32 committedLeaf = keccak256(bytes.concat(keccak256(abi.encode(proof.index, proof.committed))));
        if (!MerkleProof.verifyCalldata(proof.leafProof, batch.root, committedLeaf)) {
            revert ICodeEscrow.EscrowBadProof(orderId, "leaf");
        }

        // 4. The released code, decrypted with the revealed key, does not match it.
        bytes memory code = _decrypt(proof.key, proof.index, proof.ciphertext);
        if (keccak256(abi.encodePacked(_COMMITMENT_DOMAIN, proof.salt, code)) == proof.committed) {
            revert ICodeEscrow.EscrowCodeMatches(orderId, proof.index);
        }
        return ("bad-code-proven", keccak256(abi.encode(proof.index, proof.committed)));
    }

    /// @dev ciphertext XOR keystream, where keystream block b = keccak256(abi.encode(key, index, b)).
    function _decrypt(bytes32 key, uint256 index, bytes calldata ciphertext)
        private
        pure
        returns (bytes memory code)
    {
        code = ciphertext;
        uint256 n = code.length;
        for (uint256 offset; offset < n; offset += 32) {
            bytes32 pad = keccak256(abi.encode(key, index, offset / 32));
            assembly ("memory-safe") {
                let p := add(add(code, 0x20), offset)
                mstore(p, xor(mload(p), pad))
            }
        }
        // The last block's XOR also touches the zero padding that rounds `code` up to a whole
        // word; that padding is inside the allocation and outside `code.length`.
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Vm
/// @notice The few Foundry cheatcodes the invariant harness uses, declared here so that the
///         harness does not depend on forge-std (npm only has an old, unofficial copy of it).
///         Signatures as in Foundry's cheatcode interface (forge 1.7).
interface Vm {
    /// @notice A log recorded by `recordLogs`.
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    /// @notice The next call's msg.sender is `sender`.
    function prank(address sender) external;
    /// @notice Set block.timestamp.
    function warp(uint256 timestamp) external;
    /// @notice block.timestamp as the EVM sees it now. Read time through this: under viaIR the
    ///         optimizer may reuse a `block.timestamp` read from before a `warp`.
    function getBlockTimestamp() external view returns (uint256 timestamp);
    /// @notice The word in storage slot `slot` of `target`.
    function load(address target, bytes32 slot) external view returns (bytes32 data);
    /// @notice Set an account's native balance.
    function deal(address account, uint256 newBalance) external;
    /// @notice Deploy a contract of this project from its artifact ("File.sol:Contract").
    function deployCode(string calldata artifactPath, bytes calldata constructorArgs)
        external
        returns (address deployed);
    /// @notice Start recording logs, dropping any recorded so far.
    function recordLogs() external;
    /// @notice The logs recorded since `recordLogs` (or the last call of this), which it clears.
    function getRecordedLogs() external returns (Log[] memory logs);
    /// @notice Name an address in traces.
    function label(address account, string calldata newLabel) external;
    /// @notice The address of the account with this private key.
    function addr(uint256 privateKey) external pure returns (address keyAddr);
    /// @notice Sign `digest` (secp256k1) with `privateKey`.
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
}

/// @dev Foundry's cheatcode address: address(uint160(uint256(keccak256("hevm cheat code")))).
Vm constant VM = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

"""kameng's on-chain half: Solidity sources, compiled artifacts and the Python chain access.

Everything that touches the chain from Python goes through this package: `artifacts` loads
ABI and bytecode, `compiler` rebuilds them, `chain` connects to a node, `client` wraps the
escrow contract, and `encoding` holds the byte encodings shared with the contract.
"""

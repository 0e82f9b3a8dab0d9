"""Dispute evidence anyone can check against the chain: bundles, the verifier, the arbiter.

- `backend.evidence.bundle`: build an order's bundle (`build_bundle`), one canonical JSON
  document compatible with ERC-1497 Evidence (``fileURI``, ``fileHash``, ``selfHash``).
- `backend.evidence.verify`: the chain-only verifier (`verify_bundle`), a checklist of named
  claims, each pass, fail or skip.
- `backend.evidence.arbiter`: the arbiter's ruling citing a bundle's hash, the buyer's
  ``proveBadCode`` from a fetched release.
- `backend.evidence.store`: the parties' additions (the buyer's per-order secret, the supplier's
  salts and codes), kept encrypted beside the backend's tables.

The format is specified in docs/PROTOCOL.md, "Evidence bundle".
"""

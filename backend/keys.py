"""Per-order buyer keys, derived from a wallet signature so a buyer can always recover them.

Public API: `order_key_message`, `order_key_from_signature`, `derive_order_key`,
`next_order_key`, `recover_order_key`, `public_key_bytes`. Specified in docs/RELEASE.md.
"""

from __future__ import annotations

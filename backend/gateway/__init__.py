"""The chain gateway: the one place that sends transactions (issue 12).

Callers enqueue an *intent* (`enqueue`: "settle these orders", "resolve this dispute") with an
idempotency key, in their own transaction. The `Gateway` then, pass after pass:

1. estimates each queued intent (one that would revert is failed with the decoded custom error,
   and spends no nonce), allocates the sender's next nonce (here and nowhere else), signs an
   EIP-1559 transaction and stores the signed bytes before anything is broadcast;
2. broadcasts what is signed (again after a crash: the same bytes, so the same nonce can mine
   at most once);
3. reconciles what was sent: mined (and whether it reverted, decoded), or stuck for a few
   blocks and replaced with higher fees (same nonce, every hash remembered), or, after a
   reorganisation, sent again.

`outcome` reports an intent's state by its key. The keeper (``settle``, ``resolveTimedOut``) and
the delivery agent (``deliver``, ``acceptDeliveryKey``) send through it, each with a gateway of
its own holding its key; the vault's ``commitBatch`` is to move here next (docs/ARCHITECTURE.md).
"""

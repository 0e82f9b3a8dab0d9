"""Notifications: who must know what, told by signed webhook or email, at least once.

- `catalog`: the event types and who receives each.
- `models`: endpoints (a wallet's webhook URLs and email addresses), the durable outbox, the
  producer's cursor and the low-stock flags.
- `producer`: turns what the mirror recorded (and deadlines coming up) into outbox rows, in one
  transaction with its cursor, so a crash loses nothing and repeats nothing.
- `channels`: one small class per way out (Standard Webhooks, SMTP).
- `dispatcher`: sends due messages with exponential back-off and jitter, dead-letters them after
  the retry budget, never blocking the indexer or the delivery agent.
- `endpoints`: validation of a subscription (http(s) only, no private address outside
  development, email only when SMTP is configured) and the endpoints' signing secrets.

No code, salt, key or release ever enters a message: only ids, amounts, deadlines and links.
"""

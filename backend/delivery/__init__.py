"""The delivery agent: seals paid orders' codes to their buyers and posts the digests on-chain."""

"""The code vault: CSV intake, encryption at rest, commitments and on-chain batch commits."""

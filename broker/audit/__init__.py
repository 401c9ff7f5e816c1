"""The tamper-evident audit log: events, the Merkle tree over them, checkpoints and verification.

Nothing in this package does I/O: the store appends and reads; this code hashes and checks.
"""

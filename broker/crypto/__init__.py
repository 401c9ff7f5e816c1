"""Cryptography: the only package that imports nacl, cryptography or jwt."""

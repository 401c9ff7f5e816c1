"""The edges of Liaison: client SDKs (sender, recipient) and delivery adapters.

Adapters depend on the broker's domain, crypto and protocol modules, never on its service,
store or http packages (``tests/unit/test_layers.py`` keeps that true).
"""

"""The operator's commands, run on the broker's host against its data directory.

``setup`` (init, serve, keygen, demo), ``directory``, ``policy``, ``keys`` (the broker's key
rings per purpose: list, rotate, remove), ``escrow`` (custody of the escrow key), ``store``
(purge), ``audit`` (the local export) and ``trust`` (the administrators' root and key
bindings, made on their own machines).
"""

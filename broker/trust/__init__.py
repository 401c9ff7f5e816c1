"""The directory's root of trust: administrators' keys outside the broker, TUF-style.

``core`` verifies root rotations, key bindings and a sender's key (pure, no I/O); ``build`` makes
and signs metadata for administrators; ``files`` lays them out under ``DATA/trust/`` (and makes
the demo's); ``monitor`` reads the audit log for keys an agency did not make (pure).
"""

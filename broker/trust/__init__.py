"""The directory's root of trust: administrators' keys outside the broker, TUF-style.

``core`` verifies (pure, no I/O); ``build`` makes and signs metadata for administrators.
"""

"""Plain data of the domain: no I/O, no framework imports."""

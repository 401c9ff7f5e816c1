"""The institutional registry: load, validate, compare and present the directory."""

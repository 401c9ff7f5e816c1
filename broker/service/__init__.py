"""Use cases: each function does one thing a user asked for, through the store's interfaces."""

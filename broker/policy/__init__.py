"""Policies: channel files and Cedar rules, loaded, validated, decided and explained. No I/O
beyond reading the policy files in ``load``; decisions take the directory and time as arguments.
"""

"""Delivery drivers the broker uses to reach the outside: webhooks, e-mail alerts, JWKS fetch.

Each implements a port of ``broker.service.ports``; ``broker/app.py`` picks them.
"""

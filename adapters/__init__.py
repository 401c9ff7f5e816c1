"""The edges of Liaison, in two packages that never import each other:

- ``adapters.client``: what an agency or a recipient runs (sender and recipient SDKs, the trust
  root pin, the CAP import that turns an alert into a notice to post, the SDK's errors);
- ``adapters.delivery``: the broker's outbound drivers (webhook, e-mail, JWKS fetch), picked by
  ``broker/app.py`` and injected into the service layer through ``broker.service.ports``.

``adapters.bounded`` (a size-bounded body reader) serves both. Adapters depend on the broker's
domain, crypto and protocol modules, never on its service, store or http packages
(``tests/unit/test_layers.py`` keeps that true).
"""

"""OASIS CAP 1.2: import without loss, XML-DSig verification, export (README "CAP 1.2").

One concept per module: ``document`` (safe parsing and the OASIS schema), ``mapping`` (an alert
→ a notice document, and ``application/cap+xml`` bodies on the API), ``dsig`` (enveloped
signatures), ``export`` (a notice → CAP 1.2), ``languages`` (which info block a reader sees).
The web inbox ports mapping, languages, dsig and export to ``broker/web/static/cap.js`` and
``xmldsig.js``. Pure functions over bytes: no network, no store;
the same code runs in the broker's intake and on the recipient's device, so both read an alert
the same way.
"""

"""The operators' web dashboard: pages, a JSON API, ``/metrics`` and ``/healthz``.

Run it with ``python -m dashboard``; build the app in code with
:func:`dashboard.app.create_app`. Modules: ``app`` (wiring), ``web`` (middlewares: errors,
headers, auth, CSRF), ``security`` (credentials, sessions, tokens), ``pages`` and ``api``
(handlers), ``data`` (what they show and do), ``monitor`` (rates, series, health), ``charts``
(SVG), ``metrics`` (Prometheus), ``chat`` (sandbox chat), ``formatting`` (secrets are masked by ``queues.redaction``).
"""

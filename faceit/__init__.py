"""The FACEIT domain: Data API client, links, analysis, texts and charts.

Knows nothing of queues or Telegram (docs/design.md). The pipeline's actors call
:mod:`faceit.services`; the bot calls :mod:`faceit.links`, :mod:`faceit.store` and
:func:`faceit.i18n.user_message`; the ops monitor calls :func:`faceit.metrics.faceit_call_counts`.
"""

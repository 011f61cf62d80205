"""The first version's job functions by their old names, for its call shapes
(``queue_manager.enqueue_job(generate_analytics_report_job, priority=QueuePriority.LOW, …)``):
each name is the Dramatiq actor that runs that job now, which :meth:`QueueManager.enqueue_job`
takes as it takes any actor. The other jobs were started through the manager's
``enqueue_match_analysis`` … ``enqueue_cache_update``, which are kept as they were."""

from actors.analytics_report import analytics_report as generate_analytics_report_job

__all__ = ["generate_analytics_report_job"]

"""Today's trigger and asyncio transport, frozen as they were at commit b8e40c2, as a baseline for ``triggerer``.

``trigger.FineTuningJobTrigger`` and ``transport.AsyncTransport`` are copies of
``airflow_provider_ft/triggers/fine_tuning.py`` and of the ``AsyncTransport`` class (with the parts of
``_Transport`` it uses and its helpers) of ``airflow_provider_ft/hooks/_transport.py`` at that commit: one
``httpx.AsyncClient`` per trigger, every trigger polling on its own, retries and ``Retry-After`` waits per request.
They import only the package's stable pieces (``ClientSettings``, ``_body``, the dialects and their wire types,
``jobs``, ``exceptions``, ``retry``, and ``FineTuningHook`` for the settings and for ``apoll_job`` /
``alog_new_events`` / ``acancel_job``, which take any object with ``async send(request, deadline)``), so that the
package's own changes do not change what this baseline measures. Benchmark code only: nothing imports it but the
benchmarks.
"""

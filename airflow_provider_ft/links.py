"""Extra links from a task to its fine-tuning job in the vendor's web console.

An operator stores the job's console URL in XCom while it runs (``FineTuningJobLink.persist``); Airflow calls
``get_link`` when the task finishes and shows the stored URL as a button on the task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_ft._compat import BaseOperatorLink

if TYPE_CHECKING:
    from airflow_provider_ft._compat import BaseOperator, Context

#: XCom key under which operators store the console URL of the job they work on.
JOB_URL_XCOM_KEY = "fine_tuning_job_url"
#: XCom key under which operators and sensors store which job they work on: ``{"conn_id": ..., "job_id": ...}``.
#: The Fine-tuning page reads it to open a task instance's job, and to know which jobs a live task waits on.
JOB_REF_XCOM_KEY = "fine_tuning_job_ref"


class FineTuningJobLink(BaseOperatorLink):
    """ "Fine-tuning job": the job in the vendor's console (its page on OpenAI and Together AI; the jobs page of
    DashScope's Model Studio and of the Azure AI Foundry portal, which have none per job). A connection to another
    host than the vendor's API (a gateway, the emulator) has no link. Airflow 3.3 shows it in the task instance's
    Details tab, under "Extra Links"."""

    name = "Fine-tuning job"

    @staticmethod
    def persist(context: Context, url: str, *, conn_id: str, job_id: str) -> None:
        """Store ``url`` for this task instance, to be shown as the link, and which job on which connection the task
        works on (``JOB_REF_XCOM_KEY``).

        :param context: the running task's context
        :param url: the console URL of the job (``FineTuningHook.console_url``); ``""`` (none) stores no link
        :param conn_id: the task's connection
        :param job_id: the vendor's job id
        """
        context["ti"].xcom_push(key=JOB_REF_XCOM_KEY, value={"conn_id": conn_id, "job_id": job_id})
        if url:
            context["ti"].xcom_push(key=JOB_URL_XCOM_KEY, value=url)

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        """The URL stored by ``persist`` for the task instance ``ti_key``; empty when none was stored.

        :param operator: the task the link belongs to
        :param ti_key: the task instance (its ``dag_id``, ``task_id``, ``run_id`` and ``map_index``)
        """
        from airflow_provider_ft._compat import XCom

        url = XCom.get_value(ti_key=ti_key, key=JOB_URL_XCOM_KEY)
        return url if isinstance(url, str) else ""

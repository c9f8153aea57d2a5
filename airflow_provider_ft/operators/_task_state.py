"""The create operator's job, remembered in Airflow's task state store (Airflow 3.3+, AIP-103).

XCom is cleared before every try on Airflow 3, so it cannot tell a retry which job its earlier try made; the task
state store can: its entries belong to the task instance (DAG run, task, map index), every try reads them, and a
retry keeps them. The operator writes the job's id as soon as the create is answered and reads it first on every
try; a try that finds it re-attaches without listing the vendor's jobs.

The store is a shortcut, never the guarantee: a try that finds nothing (Airflow before 3.3, a crash between the
create and the write, an entry discarded by a clear or ``[state_store] clear_on_success``) falls back to the job's
identity at the vendor, as before. So the store is read and written tolerantly: an entry that is not ours, or a
store that fails, is logged and treated as "nothing remembered", never as an error of the task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import InvalidJobIdError
from airflow_provider_ft.vendors.ids import validate_job_id

if TYPE_CHECKING:
    from airflow_provider_ft._compat import TaskStateStore
    from airflow_provider_ft.identity import TaskIdentity
    from airflow_provider_ft.jobs import ProgressLog

#: The task state store key of the job (renaming it would make in-flight retries miss their job, then find it by
#: its identity).
JOB_KEY = "fine_tuning_job"


@dataclass(frozen=True)
class RememberedJob:
    """What the store holds for a task instance's job: its id, and what it was made for.

    The vendor and the identity key are kept with the id so that an entry is used only by the task instance and
    vendor it was written for: a DAG whose connection now points at another vendor, or another ``namespace``,
    finds nothing here and looks at the vendor instead.

    :param job_id: the vendor's job id
    :param vendor: the dialect's name (``openai``, ``dashscope``, ...)
    :param identity: the ``TaskIdentity.key`` the job was made for
    """

    job_id: str
    vendor: str
    identity: str

    def to_value(self) -> dict[str, str]:
        return {"job_id": self.job_id, "vendor": self.vendor, "identity": self.identity}

    @classmethod
    def from_value(cls, value: object) -> RememberedJob:
        """The entry read back; ``ValueError`` for anything that is not an entry of this shape with a safe id."""
        if not isinstance(value, dict):
            raise ValueError(f"a {type(value).__name__}, not an object")
        fields = {name: value.get(name) for name in ("job_id", "vendor", "identity")}
        missing = [name for name, field in fields.items() if not isinstance(field, str)]
        if missing:
            raise ValueError(f"no string {', '.join(missing)}")
        try:
            job_id = validate_job_id(fields["job_id"])
        except InvalidJobIdError as error:
            raise ValueError(str(error)) from None
        return cls(job_id=job_id, vendor=str(fields["vendor"]), identity=str(fields["identity"]))


class JobMemory:
    """Reads and writes one task instance's job in the task state store; does nothing where there is no store.

    :param store: ``context["task_state_store"]`` (``None`` before Airflow 3.3)
    :param vendor: the dialect's name
    :param identity: the task instance's identity
    :param log: where a store that cannot be used is reported
    """

    def __init__(self, store: TaskStateStore | None, vendor: str, identity: TaskIdentity, log: ProgressLog) -> None:
        self._store = store
        self._vendor = vendor
        self._identity = identity
        self._log = log
        self._written: str | None = None

    def recall(self) -> str | None:
        """The id of the job an earlier try of this task instance wrote for this vendor and identity, if any."""
        if self._store is None:
            return None
        try:
            value: Any = self._store.get(JOB_KEY)
        except Exception as error:
            self._log.warning(
                "Could not read the task state store (%s); looking for the job at the vendor",
                _say(error),
            )
            return None
        if value is None:
            return None
        try:
            entry = RememberedJob.from_value(value)
        except ValueError as error:
            self._log.warning("Ignoring the task state store's %r entry: %s", JOB_KEY, printable(error, 200))
            return None
        if (entry.vendor, entry.identity) != (self._vendor, self._identity.key):
            self._log.info(
                "The task state store names job %s of another vendor or identity; looking for this one's job",
                entry.job_id,
            )
            return None
        self._written = entry.job_id
        return entry.job_id

    def remember(self, job_id: str) -> None:
        """Write ``job_id`` as this task instance's job (once per id), kept for as long as its DAG run.

        A failed write is logged, not raised: the job exists and carries its identity, so a later try still finds
        it at the vendor.
        """
        if self._store is None or job_id == self._written:
            return
        from airflow_provider_ft._compat import NEVER_EXPIRE

        entry = RememberedJob(job_id=job_id, vendor=self._vendor, identity=self._identity.key)
        try:
            self._store.set(JOB_KEY, entry.to_value(), retention=NEVER_EXPIRE)
        except Exception as error:
            self._log.warning(
                "Could not write job %s to the task state store (%s); a retry will find it by its identity",
                job_id,
                _say(error),
            )
            return
        self._written = job_id


def _say(error: BaseException) -> str:
    return printable(f"{type(error).__name__}: {error}", 300)

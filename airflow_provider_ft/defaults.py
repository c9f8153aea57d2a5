"""Facts several modules need, written once: default connection ids, base URLs, zones, limits.

Imports nothing, so that ``get_provider_info()``, the dialects and the operators can all read it
without pulling anything else in.
"""

from __future__ import annotations

DASHSCOPE_CONN_ID = "dashscope_default"
OPENAI_CONN_ID = "openai_default"
AZURE_OPENAI_CONN_ID = "azure_openai_default"
TOGETHER_CONN_ID = "together_default"
#: The connection operators, the sensor and the hook use when none is given.
DEFAULT_CONN_ID = DASHSCOPE_CONN_ID

DASHSCOPE_BASE_URL = "https://dashscope-intl.aliyuncs.com/api/v1"
OPENAI_BASE_URL = "https://api.openai.com/v1"
#: DashScope sends local times without a zone. Alibaba Cloud's Model Studio console shows them as Beijing time and
#: the service is run from China, so UTC+8 is the default; the connection extra ``timezone`` changes it.
DASHSCOPE_TIMEZONE = "Asia/Shanghai"

#: Seconds of connect and read timeout of each request (connection extra ``timeout``).
TIMEOUT = 30.0
#: Retries after the first attempt (connection extra ``max_retries``) and the most a connection may ask for.
MAX_RETRIES = 4
MAX_RETRIES_LIMIT = 10
#: First backoff in seconds, doubling up to ``BACKOFF_MAX``, plus up to ``JITTER`` of it at random.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0
JITTER = 0.25
#: The longest wait a server's ``Retry-After`` can impose, in seconds (connection extra ``retry_after_max``).
RETRY_AFTER_MAX = 60.0
#: The most bytes one answer may decode to (connection extra ``max_response_bytes``): far above any real page.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
#: The most pages one listing may take (connection extra ``max_pages``) before it ends with an error.
MAX_PAGES = 1000
#: The slowest upload an attempt allows for: an upload's deadline grows by its size at this many bytes a second.
UPLOAD_BYTES_PER_SECOND = 512 * 1024
#: Seconds to wait before each look for a job (or file) whose create answer was lost, before creating again.
SETTLE_DELAYS = (0.0, 2.0, 5.0, 10.0)
#: Jobs per page when listing.
PAGE_SIZE = 50

#: ``status`` of the events ``FineTuningJobTrigger`` fires.
EVENT_SUCCESS = "success"
EVENT_TIMEOUT = "timeout"
EVENT_ERROR = "error"
#: A cost guard was passed (the trigger cancelled the job before firing).
EVENT_BUDGET = "budget"
EVENT_STATUSES = (EVENT_SUCCESS, EVENT_TIMEOUT, EVENT_ERROR, EVENT_BUDGET)

"""The blocking transport: one keep-alive ``requests.Session``, each attempt within a whole-request deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from airflow_provider_ft.exceptions import FineTuningApiError
from airflow_provider_ft.transport.base import CHUNK, Transport
from airflow_provider_ft.transport.multipart import MultipartBody
from airflow_provider_ft.transport.settings import ClientSettings
from airflow_provider_ft.vendors.wire import ApiRequest


class SyncTransport(Transport):
    """Blocking transport over one keep-alive ``requests.Session``.

    :param settings: the account and its limits
    """

    def __init__(self, settings: ClientSettings) -> None:
        import requests  # on first use: DAG files that only build operators never pay for it
        import urllib3

        from airflow_provider_ft.transport.deadline import mount_deadlines

        super().__init__(settings)
        # A body read from the raw stream raises urllib3's errors, not requests' wrappers of them.
        self._request_errors = (requests.RequestException, urllib3.exceptions.HTTPError)
        self.session: requests.Session = requests.Session()
        self.session.headers.update(settings.headers())
        self.session.auth = _bearer_only  # a ~/.netrc entry for the host must not replace the API key
        mount_deadlines(self.session)

    def close(self) -> None:
        self.session.close()

    def send(self, request: ApiRequest, deadline: float | None = None) -> dict[str, Any]:
        """Send ``request``, again while the retry policy allows; the decoded JSON object, or one typed error.

        :param request: what to send
        :param deadline: ``time.monotonic()`` by which the call must be over, retries and waits included
        """
        attempt = 1
        while True:
            try:
                return self._attempt(request, deadline)
            except FineTuningApiError as error:
                wait = self._retry_wait(request, error, attempt, deadline)
            time.sleep(wait)
            attempt += 1

    def _attempt(self, request: ApiRequest, deadline: float | None) -> dict[str, Any]:
        from airflow_provider_ft.transport.deadline import request_deadline

        turn = self._turn(request, deadline, first=True)
        while not turn.final:
            time.sleep(turn.wait)
            turn = self._turn(request, deadline, first=False)
        if turn.wait:
            time.sleep(turn.wait)
        with request_deadline(self._attempt_deadline(request, deadline)) as watch:
            try:
                status, headers, body = self._exchange(request, watch.remaining)
            except BaseException as error:
                raise self._failed(request, turn.probe, error, expired=watch.expired) from None
        if watch.expired:  # the socket was shut down mid-answer; what was read so far can look complete
            raise self._failed(request, turn.probe, None, expired=True)
        return self._answer(request, turn.probe, status, headers, body)

    def _exchange(self, request: ApiRequest, remaining: Callable[[], float]) -> tuple[int, dict[str, str], bytes]:
        timeout = max(min(self.settings.timeout, remaining()), 0.001)
        body = None if request.upload is None else MultipartBody(request.upload)
        with self.session.request(
            request.method,
            self.settings.url(request),
            params=list(request.params),
            json=request.json_body,
            data=body,
            headers=None if body is None else {"Content-Type": body.content_type},
            timeout=(timeout, timeout),
            allow_redirects=False,
            stream=True,
        ) as answer:
            headers, reader = self._reader(answer)
            for chunk in answer.raw.stream(CHUNK, decode_content=False):
                reader.feed(chunk)
                if reader.full:
                    break
            return answer.status_code, headers, reader.finish()


def _bearer_only(prepared: Any) -> Any:
    """``requests`` auth that leaves the request as built (the key is already in the session's headers)."""
    return prepared

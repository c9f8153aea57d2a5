"""``ClientSettings``: one vendor account and its limits, from an Airflow connection checked field by field."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from airflow_provider_ft import __version__, _validate, defaults
from airflow_provider_ft._numbers import is_finite_number
from airflow_provider_ft.cost import MAX_CURRENCY_LENGTH, Price, is_currency
from airflow_provider_ft.exceptions import FineTuningConfigError
from airflow_provider_ft.get_provider_info import RENAMED_CONNECTION_TYPES
from airflow_provider_ft.retry import RetryPolicy
from airflow_provider_ft.transport.body import ACCEPTED_ENCODINGS, Scrubber
from airflow_provider_ft.vendors import DIALECTS_BY_CONN_TYPE
from airflow_provider_ft.vendors.base import Dialect
from airflow_provider_ft.vendors.wire import ApiRequest

if TYPE_CHECKING:
    from airflow_provider_ft._compat import Connection

USER_AGENT = f"airflow-provider-ft/{__version__}"
T = TypeVar("T")
_retry_count = functools.partial(_validate.whole_number, minimum=0, maximum=defaults.MAX_RETRIES_LIMIT)
_PREFIXED_EXTRA = re.compile(r"^extra__[a-z0-9_]+?__")
_UNNAMED = object()
#: How many connections' settings a process keeps for reuse (the oldest made is dropped first).
RECENT_SETTINGS_KEPT = 64
_RECENT_SETTINGS: dict[str, ClientSettings] = {}
_RECENT_SETTINGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class ClientSettings:
    """Everything needed to talk to one vendor account, resolved from an Airflow connection.

    :param conn_id: the Airflow connection it came from (for messages)
    :param dialect: the vendor's API
    :param base_url: URL the dialect's paths are relative to
    :param api_key: the key (never in a repr, a log line or an error)
    :param timeout: seconds for the connection to open and for each read
    :param retry: how often and how patiently to try a request
    :param max_response_bytes: most bytes one answer may decode to
    :param max_pages: most pages one listing may take
    :param namespace: what keeps this deployment's job identities apart from another's on the same account
    :param max_requests_per_second: a ceiling on the requests of the whole account in this process (``None``: none)
    """

    conn_id: str
    dialect: Dialect
    base_url: str
    api_key: str = field(repr=False)
    timeout: float = defaults.TIMEOUT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_response_bytes: int = defaults.MAX_RESPONSE_BYTES
    max_pages: int = defaults.MAX_PAGES
    namespace: str = ""
    max_requests_per_second: float | None = None

    @property
    def attempt_seconds(self) -> float:
        """The total deadline of one attempt: one ``timeout`` to connect plus one to send the whole answer."""
        return 2 * self.timeout

    @functools.cached_property
    def account_key(self) -> str:
        """Which account these settings talk to: the dialect, the base URL and a digest of the request headers (the
        key among them, so the key itself is not stored again)."""
        digest = hashlib.sha256()
        for name, value in sorted(self.headers().items()):
            digest.update(f"{name.lower()}\0{value}\0".encode())
        return f"{self.dialect.name} {self.base_url} {digest.hexdigest()}"

    @functools.cached_property
    def scrubber(self) -> Scrubber:
        return Scrubber([self.api_key])

    @functools.cached_property
    def price(self) -> Price | None:
        """The account's price per million trained tokens (extras ``price_per_million_tokens`` and ``currency``),
        or ``None`` when the connection gives none. Checked here, when first asked for, not with the other fields: a
        bad price fails what needs a cost (``max_cost``), not every call on the account."""
        try:
            return _price(self.dialect.extras)
        except FineTuningConfigError as error:
            raise FineTuningConfigError(f"Connection {self.conn_id!r}: {error}") from None

    def url(self, request: ApiRequest) -> str:
        return self.base_url + request.path

    def headers(self) -> dict[str, str]:
        return {**self.dialect.headers(self.api_key), "User-Agent": USER_AGENT, "Accept-Encoding": ACCEPTED_ENCODINGS}


def settings_from_connection(conn: Connection, name: object = _UNNAMED) -> ClientSettings:
    """Validate ``conn`` and resolve the dialect, base URL, key, timeouts, limits and retry policy it describes.

    Settings are immutable, so the hooks of one connection in a process share them (a triggerer holds thousands
    of triggers on a few connections): a connection read again with the same fields gets the settings already
    made, a changed one new settings. Only a digest of the fields is kept as the key, never the fields.

    :param conn: the Airflow connection
    :param name: how messages name the connection (default: by its id; ``None``: "the connection", for a test
        under a random id as Airflow's UI and REST API run them)
    """
    digest = _fields_digest(conn, name is _UNNAMED)
    settings = _RECENT_SETTINGS.get(digest)
    if settings is not None:
        _mask(settings.api_key)
        return settings
    settings = _resolve(conn, name)
    with _RECENT_SETTINGS_LOCK:  # hooks of several threads (a cleanup's workers) may add at once
        if len(_RECENT_SETTINGS) >= RECENT_SETTINGS_KEPT:
            del _RECENT_SETTINGS[next(iter(_RECENT_SETTINGS))]
        _RECENT_SETTINGS[digest] = settings
    return settings


def _fields_digest(conn: Connection, named: bool) -> str:
    digest = hashlib.sha256()
    for value in (conn.conn_id, conn.conn_type, conn.host, conn.password, conn.extra, named):
        digest.update(f"{value!r}\0".encode(errors="surrogatepass"))
    return digest.hexdigest()


def _resolve(conn: Connection, name: object) -> ClientSettings:
    conn_id = str(conn.conn_id)
    subject = f"Connection {conn_id!r}" if name is _UNNAMED else "The connection"

    def fail(problem: str) -> FineTuningConfigError:
        return FineTuningConfigError(f"{subject}: {problem}")

    dialect_class = DIALECTS_BY_CONN_TYPE.get(conn.conn_type or "")
    if dialect_class is None:
        supported = ", ".join(sorted(set(DIALECTS_BY_CONN_TYPE) - set(RENAMED_CONNECTION_TYPES)))
        raise fail(f"its type {conn.conn_type!r} is not one this provider can use; set it to one of: {supported}")
    extras = _extras(conn.extra, fail)
    try:
        dialect = dialect_class(extras)
        options = dialect.extras
        return ClientSettings(
            conn_id=conn_id,
            dialect=dialect,
            base_url=_base_url(conn.host, dialect.default_base_url),
            api_key=_api_key(conn.password, dialect.display_name),
            timeout=_extra(options, "timeout", _validate.seconds, defaults.TIMEOUT),
            retry=RetryPolicy(
                max_retries=_extra(options, "max_retries", _retry_count, defaults.MAX_RETRIES),
                backoff_base=_extra(options, "backoff_base", _validate.seconds, defaults.BACKOFF_BASE),
                retry_after_max=_extra(options, "retry_after_max", _validate.seconds, defaults.RETRY_AFTER_MAX),
            ),
            max_response_bytes=_extra(
                options, "max_response_bytes", _validate.whole_number, defaults.MAX_RESPONSE_BYTES
            ),
            max_pages=_extra(options, "max_pages", _validate.whole_number, defaults.MAX_PAGES),
            namespace=_namespace(options.get("namespace")),
            max_requests_per_second=_extra(options, "max_requests_per_second", _rate, None),
        )
    except FineTuningConfigError as error:
        raise fail(str(error)) from None


def _extras(extra: str | None, fail: Callable[[str], FineTuningConfigError]) -> dict[str, Any]:
    if not extra:
        return {}
    try:
        parsed = json.loads(extra)
    except ValueError:
        raise fail("its extra is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise fail("its extra must be a JSON object")
    # Forms of Airflow 2 stored custom fields as extra__<conn type>__<name>; accept both spellings.
    return {_PREFIXED_EXTRA.sub("", str(key)): value for key, value in parsed.items()}


def _api_key(password: str | None, vendor: str) -> str:
    if not password:
        raise FineTuningConfigError(f"it has no API key: put the {vendor} API key in the password field")
    if any(char.isspace() or not char.isprintable() or not char.isascii() for char in password):
        raise FineTuningConfigError(
            "the API key contains whitespace, a line break or other characters an API key cannot have; "
            "paste it again without surrounding spaces or newlines"
        )
    _mask(password)
    return password


def _mask(secret: str) -> None:
    from airflow_provider_ft._compat import mask_secret

    mask_secret(secret)


def _base_url(host: str | None, default: str) -> str:
    if not host or not host.strip():
        if not default:  # an API without one base URL (each account has its own endpoint)
            raise FineTuningConfigError("it has no host: set it to the base URL of your account's endpoint")
        return default
    parts = urlsplit(host.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise FineTuningConfigError(
            f"host {host[:200]!r} is not a base URL; set it to a full http(s) URL such as {default!r}, "
            "or leave it empty for that default"
        )
    if parts.username or parts.password:
        raise FineTuningConfigError(
            "the host must not carry a user name or password (user:password@); "
            "put the API key in the password field and the bare URL in the host"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise FineTuningConfigError(f"host {host[:200]!r} has an invalid port") from None
    return host.strip().rstrip("/")


def _extra(extras: Mapping[str, Any], name: str, check: Callable[[str, object], T], default: T) -> T:
    """Extra ``name`` checked by ``check`` (which names it as ``extra 'name'``), or ``default`` when unset; a number
    typed into a form field as text (``"30"``, ``"0.5"``) counts as that number."""
    value = extras.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, str):
        value = _number(value)
    return check(f"extra {name!r}", value)


def _number(text: str) -> object:
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(text.strip())
    return text


def _namespace(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 200:
        raise FineTuningConfigError("extra 'namespace' must be a text of at most 200 characters")
    return value


def _rate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 10_000:
        raise FineTuningConfigError(f"{name} must be a number of requests per second above 0 (at most 10000)")
    return float(value)


def _price(extras: Mapping[str, Any]) -> Price | None:
    per_million = _extra(extras, "price_per_million_tokens", _price_per_million, None)
    if per_million is None:
        return None
    return Price(per_million, _currency(extras.get("currency")))


def _price_per_million(name: str, value: object) -> float:
    # The value is not repeated: a price field is no place for a secret, but one pasted there stays out of logs.
    if not is_finite_number(value) or value <= 0:
        raise FineTuningConfigError(
            f"{name} must be a finite number above 0: what one million trained tokens cost (e.g. 8 or 0.5)"
        )
    return float(value)


def _currency(value: object) -> str | None:
    text = value.strip() if isinstance(value, str) else value
    if text is None or text == "":
        return None
    if not is_currency(text):
        raise FineTuningConfigError(
            f"extra 'currency' must be a short text of at most {MAX_CURRENCY_LENGTH} characters without spaces, "
            "such as USD"
        )
    return text

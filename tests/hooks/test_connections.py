"""A connection that cannot work fails before any request, with an error naming it and what to fix."""

from __future__ import annotations

import pytest

from airflow_provider_ft.cost import Price
from airflow_provider_ft.exceptions import FineTuningConfigError, FineTuningTransportError
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft_emulator import FineTuningEmulator
from tests.conftest import API_KEY, FAST_RETRIES, ConnectionFactory, Vendor


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"password": None}, "has no API key"),
        ({"password": ""}, "has no API key"),
        ({"password": "sk-abc def"}, "whitespace"),
        ({"password": "sk-abcdef\n"}, "whitespace"),
        ({"password": "sk-abc\x00def"}, "whitespace"),
        ({"host": "api.example.com/v1"}, "full http(s) URL"),
        ({"host": "ftp://api.example.com"}, "full http(s) URL"),
        ({"host": "https://api.example.com:99999/v1"}, "invalid port"),
        ({"timeout": -1}, "'timeout' must be a positive number of seconds"),
        ({"timeout": "soon"}, "'timeout' must be a finite number of seconds"),
        ({"max_retries": 99}, "'max_retries' must be a whole number"),
        ({"max_retries": "many"}, "'max_retries' must be a whole number"),
    ],
    ids=lambda value: str(value)[:30],
)
def test_unusable_connection_is_refused_before_any_request(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    make_connection: ConnectionFactory,
    overrides: dict[str, object],
    expected: str,
) -> None:
    settings: dict[str, object] = {"host": emulator.url(vendor.name), **overrides}
    conn_id = make_connection("broken_conn", vendor.conn_type, **settings)
    with pytest.raises(FineTuningConfigError) as raised:
        FineTuningHook(conn_id).get_job("ft-1")
    assert "'broken_conn'" in str(raised.value)
    assert expected in str(raised.value)
    assert emulator.requests == []
    password = overrides.get("password")
    if isinstance(password, str) and password.strip():
        assert password.strip() not in str(raised.value)


def test_unknown_conn_type_names_the_supported_ones(make_connection: ConnectionFactory) -> None:
    conn_id = make_connection("wrong_type", "http", host="https://example.com")
    with pytest.raises(FineTuningConfigError, match=r"'wrong_type'.*dashscope, openai, openaifinetuning"):
        FineTuningHook(conn_id).get_job("ft-1")


def test_dashscope_timezone_extra_is_validated(make_connection: ConnectionFactory) -> None:
    conn_id = make_connection("tz_conn", "dashscope", timezone="Atlantis/Capital")
    with pytest.raises(FineTuningConfigError, match=r"'tz_conn'.*timezone"):
        FineTuningHook(conn_id).get_job("ft-1")


def test_default_base_urls(make_connection: ConnectionFactory) -> None:
    ds = make_connection("ds_defaults", "dashscope")
    oa = make_connection("oa_defaults", "openaifinetuning")
    assert FineTuningHook(ds).settings.base_url == "https://dashscope-intl.aliyuncs.com/api/v1"
    assert FineTuningHook(oa).settings.base_url == "https://api.openai.com/v1"


def test_any_base_url_shape_is_kept(make_connection: ConnectionFactory) -> None:
    conn_id = make_connection("gateway", "openaifinetuning", host="http://10.0.0.1:8443/proxy/openai/v1/")
    assert FineTuningHook(conn_id).settings.base_url == "http://10.0.0.1:8443/proxy/openai/v1"


def test_airflow2_style_prefixed_extras_are_read(make_connection: ConnectionFactory) -> None:
    conn_id = make_connection("prefixed", "dashscope", **{"extra__dashscope__workspace": "ws-1"})
    assert FineTuningHook(conn_id).settings.dialect.extra_headers() == {"X-DashScope-WorkSpace": "ws-1"}


def test_page_size_is_validated() -> None:
    with pytest.raises(FineTuningConfigError, match="page_size"):
        FineTuningHook("any", page_size=0)
    with pytest.raises(FineTuningConfigError, match="page_size"):
        FineTuningHook("any", page_size=101)


def test_unreachable_host_is_a_transport_error_after_bounded_retries(
    vendor: Vendor, make_connection: ConnectionFactory, unused_tcp_port: int
) -> None:
    conn_id = make_connection(
        "nowhere", vendor.conn_type, host=f"http://127.0.0.1:{unused_tcp_port}/v1", max_retries=2, backoff_base=0.01
    )
    with pytest.raises(FineTuningTransportError) as raised:
        FineTuningHook(conn_id).get_job("ft-1")
    assert raised.value.attempts == 3
    assert "'nowhere'" in str(raised.value)


@pytest.mark.parametrize(
    ("old_type", "vendor_name"),
    [("openai_fine_tuning", "openai"), ("azure_openai_fine_tuning", "azure"), ("together_fine_tuning", "together")],
)
def test_a_connection_stored_under_a_type_name_from_before_the_rename_still_works(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, old_type: str, vendor_name: str
) -> None:
    """The types lost their underscores (issue 24); a connection saved with the old name keeps working, in a task
    and in Airflow's own connection test (what ``airflow connections test`` and the REST API's test run)."""
    from airflow.models.connection import Connection

    conn_id = make_connection(f"old_{vendor_name}", old_type, host=emulator.url(vendor_name), **FAST_RETRIES)
    seeded = emulator.seed_job(vendor_name)

    assert FineTuningHook(conn_id).get_job(seeded).id == seeded
    ok, message = Connection.get_connection_from_secrets(conn_id).test_connection()
    assert ok, message
    assert message.startswith("Connected to "), message


def test_hooks_of_one_connection_share_its_settings_until_it_changes(make_connection: ConnectionFactory) -> None:
    from airflow_provider_ft.transport import settings as settings_module

    conn_id = make_connection("shared_conn", "openaifinetuning", host="https://gateway.example/v1", password="sk-one")
    first = FineTuningHook(conn_id).settings
    assert FineTuningHook(conn_id).settings is first, "a triggerer makes one ClientSettings per connection"
    make_connection("shared_conn", "openaifinetuning", host="https://gateway.example/v2", password="sk-one")
    changed = FineTuningHook(conn_id).settings
    assert changed is not first
    assert changed.base_url == "https://gateway.example/v2"
    assert not any("sk-one" in digest for digest in settings_module._RECENT_SETTINGS), "keyed by a digest only"


# -- the price (extras price_per_million_tokens and currency) -------------------------------------------------


@pytest.mark.parametrize(
    ("extras", "price"),
    [
        ({}, None),
        ({"price_per_million_tokens": 8}, Price(8.0)),
        ({"price_per_million_tokens": "0.5", "currency": " USD "}, Price(0.5, "USD")),  # as typed into the form
        ({"price_per_million_tokens": 25.0, "currency": ""}, Price(25.0)),
        ({"price_per_million_tokens": "", "currency": "USD"}, None),  # a currency alone prices nothing
        ({"extra__openaifinetuning__price_per_million_tokens": 3}, Price(3.0)),
    ],
    ids=lambda value: str(value)[:40],
)
def test_the_price_comes_from_the_connection_extras(
    make_connection: ConnectionFactory, extras: dict[str, object], price: Price | None
) -> None:
    conn_id = make_connection("priced", "openaifinetuning", **extras)
    assert FineTuningHook(conn_id).price == price


@pytest.mark.parametrize(
    ("extras", "named"),
    [
        ({"price_per_million_tokens": 0}, "price_per_million_tokens"),
        ({"price_per_million_tokens": -8}, "price_per_million_tokens"),
        ({"price_per_million_tokens": "nan"}, "price_per_million_tokens"),
        ({"price_per_million_tokens": "inf"}, "price_per_million_tokens"),
        ({"price_per_million_tokens": "sk-pasted-here-by-mistake"}, "price_per_million_tokens"),
        ({"price_per_million_tokens": True}, "price_per_million_tokens"),
        ({"price_per_million_tokens": 8, "currency": "US dollars"}, "currency"),
        ({"price_per_million_tokens": 8, "currency": 840}, "currency"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_a_bad_price_fails_where_it_is_used_naming_the_extra(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    make_connection: ConnectionFactory,
    extras: dict[str, object],
    named: str,
) -> None:
    conn_id = make_connection("badly_priced", vendor.conn_type, host=emulator.url(vendor.name), **extras)
    hook = FineTuningHook(conn_id)
    assert hook.settings.conn_id == conn_id  # every other use of the connection still works
    with pytest.raises(FineTuningConfigError) as raised:
        hook.price  # noqa: B018
    message = str(raised.value)
    assert f"'badly_priced': extra '{named}'" in message
    assert API_KEY not in message
    assert "sk-pasted" not in message

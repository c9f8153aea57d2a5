"""The answer's pure processing: decoding within a size cap, and scrubbing the connection's secrets."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from airflow_provider_ft.exceptions import BodyTooLarge, FineTuningApiError
from airflow_provider_ft.transport.body import BodyReader, Scrubber

KEY = "sk-live-AbC/123+xyz"


def _bomb(inflated: int) -> bytes:
    """A gzip stream that inflates to ``inflated`` zero bytes, built without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b"\0" * (1 << 20)
    parts = [packer.compress(block) for _ in range(inflated // len(block))]
    return b"".join([*parts, packer.flush()])


def _read(reader: BodyReader, raw: bytes, chunk: int = 64 * 1024) -> bytes:
    for start in range(0, len(raw), chunk):
        reader.feed(raw[start : start + chunk])
        if reader.full:
            break
    return reader.finish()


@pytest.mark.parametrize("encoding", [None, "identity", "gzip", "deflate", "deflate-raw"])
def test_each_encoding_decodes_to_the_body(encoding: str | None) -> None:
    body = json.dumps({"id": "ftjob-1", "status": "running", "pad": "x" * 300_000}).encode()
    raw = {
        None: body,
        "identity": body,
        "gzip": gzip.compress(body),
        "deflate": zlib.compress(body),
        "deflate-raw": _raw_deflate(body),
    }[encoding]
    header = "deflate" if encoding == "deflate-raw" else encoding
    assert _read(BodyReader(header, 1 << 20), raw) == body


def _raw_deflate(body: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(body) + packer.flush()


def test_a_gzip_bomb_stops_at_the_cap_having_inflated_little() -> None:
    bomb = _bomb(1 << 30)  # about 1 MB on the wire, 1 GiB inflated
    reader = BodyReader("gzip", 4 << 20)
    with pytest.raises(BodyTooLarge, match="max_response_bytes=4194304"):
        _read(reader, bomb)
    assert len(reader._body) <= 4 << 20


def test_an_error_answer_keeps_only_its_first_bytes() -> None:
    reader = BodyReader(None, 100, truncate=True)
    assert _read(reader, b"E" * 10_000, chunk=7) == b"E" * 100
    assert reader.full


def test_an_encoding_not_asked_for_is_refused() -> None:
    with pytest.raises(FineTuningApiError, match="'br'"):
        BodyReader("br", 100)


def test_a_corrupt_compressed_body_is_a_typed_error() -> None:
    with pytest.raises(FineTuningApiError, match="corrupt"):
        _read(BodyReader("gzip", 1000), b"\x1f\x8b\x08\x00garbage-that-is-not-deflate")


@pytest.mark.parametrize(
    "body",
    [
        f"Incorrect API key provided: {KEY}".encode(),
        json.dumps({"error": {"message": f"bad key {KEY}", "code": KEY}}).encode(),
        json.dumps({"k": KEY}, ensure_ascii=True).replace("/", "\\/").encode(),
        ('{"message": "' + "".join(f"\\u{ord(char):04x}" for char in KEY) + '"}').encode(),
        f"GET /?key={KEY.replace('/', '%2F').replace('+', '%2B')}".encode(),
        json.dumps({KEY: [{"deep": [KEY]}]}).encode(),
    ],
    ids=["text", "json", "json-escaped-slash", "json-unicode-escapes", "percent-encoded", "keys-and-nesting"],
)
def test_every_spelling_of_the_key_is_scrubbed_from_a_body(body: bytes) -> None:
    scrubbed = Scrubber([KEY]).body(body)
    assert KEY.encode() not in scrubbed
    decoded = json.loads(scrubbed) if scrubbed.startswith(b"{") else scrubbed.decode()
    assert KEY not in json.dumps(decoded, ensure_ascii=False)
    assert "***" in scrubbed.decode()


def test_header_values_are_scrubbed_and_names_lower_cased() -> None:
    headers = Scrubber([KEY]).headers({"X-Request-Id": KEY, "WWW-Authenticate": f"Bearer {KEY}"})
    assert headers == {"x-request-id": "***", "www-authenticate": "Bearer ***"}


def test_a_body_without_the_key_is_left_as_it_is() -> None:
    body = b'{"message": "caf\\u00e9 \\/ ok"}'
    assert Scrubber([KEY]).body(body) == body

"""Bodies too big to hold: a gzip bomb, and huge answers produced piece by piece.

Nothing here builds a body of the promised size in memory: the bomb is made from one compressed block repeated,
and huge answers are iterators of chunks that reuse one filler block.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from airflow_provider_ft_emulator.exchange import Exchange, encode_json
from airflow_provider_ft_emulator.specimens import job_answer, page_answer, shape_of, specimen_job
from airflow_provider_ft_emulator.vocabulary import WORDS

BOMB_PREFIX = b'{"data": ['
CHUNK = 64 * 1024
_SPACES = b" " * (1024 * 1024)
_FILLER = b"x" * CHUNK
_HOLE = "<<filler>>"
#: gzip header: magic, deflate, no flags, no mtime, no extra flags, unknown OS.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


@lru_cache(maxsize=4)
def gzip_bomb(size: int) -> bytes:
    """A single-member gzip stream inflating to ``size`` bytes: ``{"data": [`` and then spaces.

    A full flush after each block resets the compressor, so every block of spaces compresses to the same bytes:
    one is compressed and repeated. About 1 KiB per inflated MiB; cached per size.

    :param size: inflated bytes
    """
    head = BOMB_PREFIX[:size]
    blocks, rest = divmod(size - len(head), len(_SPACES))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [_GZIP_HEADER, compressor.compress(head), compressor.flush(zlib.Z_FULL_FLUSH)]
    crc = zlib.crc32(head)
    if blocks:
        block = compressor.compress(_SPACES) + compressor.flush(zlib.Z_FULL_FLUSH)
        parts.append(block * blocks)
        for _ in range(blocks):
            crc = zlib.crc32(_SPACES, crc)
    tail = _SPACES[:rest]
    parts += [
        compressor.compress(tail),
        compressor.flush(),
        struct.pack("<II", zlib.crc32(tail, crc), size & 0xFFFFFFFF),
    ]
    return b"".join(parts)


def huge_job(exchange: Exchange, size: int) -> Iterator[bytes]:
    """A failed job whose error message makes the answer about ``size`` bytes."""
    words = WORDS[shape_of(exchange)]
    job = specimen_job(exchange, _huge_id(exchange, 0), status=words.failed, error=_HOLE)
    before, after = _split(job_answer(exchange, job), _HOLE)
    yield before
    yield from filler(size - len(before) - len(after))
    yield after


def huge_page(exchange: Exchange, size: int) -> Iterator[bytes]:
    """One page of distinct running jobs, about ``size`` bytes in all."""
    template = encode_json(specimen_job(exchange, _HOLE))
    count = max(1, size // (len(template) + 1))
    before, after = _split(page_answer(exchange, [_HOLE], page_size=count, total=count), f'"{_HOLE}"')
    yield before
    per_chunk = max(1, CHUNK // len(template))
    separator = b""
    for start in range(0, count, per_chunk):
        ids = (_huge_id(exchange, index) for index in range(start, min(start + per_chunk, count)))
        yield separator + b",".join(template.replace(_HOLE.encode(), job_id.encode()) for job_id in ids)
        separator = b","
    yield after


def huge_text(size: int) -> Iterator[bytes]:
    """``size`` bytes of plain text, as a broken upstream might dump."""
    head = b"upstream error: "
    yield head[:size]
    yield from filler(size - len(head))


def filler(size: int) -> Iterator[bytes]:
    """``size`` bytes of ``x`` in chunks of at most :data:`CHUNK`."""
    whole, rest = divmod(max(size, 0), CHUNK)
    for _ in range(whole):
        yield _FILLER
    if rest:
        yield _FILLER[:rest]


def _split(body: Any, hole: str) -> tuple[bytes, bytes]:
    before, _, after = encode_json(body).partition(hole.encode())
    return before, after


def _huge_id(exchange: Exchange, index: int) -> str:
    if shape_of(exchange) == "dashscope":
        return f"ft-202401010000-{index:08x}"
    return f"ftjob-huge{index:018d}"

"""Server-supplied text made safe to put in a log line or an error message.

A server chooses the bytes of ids, statuses and messages; a newline or an ANSI escape among them would start a
forged log line or recolour the terminal. ``printable`` escapes every character that does not print, as ``repr``
does, and cuts long text short. Imports nothing of this package, so every module can use it.
"""

from __future__ import annotations

ELLIPSIS = "..."


def printable(text: object, limit: int | None = None) -> str:
    """``text`` (``str()`` of it if it is not a string) with every non-printable character escaped.

    Control characters, line and paragraph separators, non-space whitespace, format characters, lone surrogates
    and unassigned code points become their ``repr`` escapes without quotes (``\\n``, ``\\x1b``, ``\\u2028``);
    the space and every printable character, backslashes included, stay as they are.

    :param text: the text, or any object whose ``str()`` is wanted
    :param limit: at most this many characters of the escaped text are kept, followed by ``...`` when it was cut
        (``None``: no limit); must be 0 or more
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, got {limit}")
    source = text if isinstance(text, str) else str(text)
    pieces: list[str] = []
    length = 0
    for char in source:
        piece = char if char.isprintable() else repr(char)[1:-1]
        if limit is not None and length + len(piece) > limit:
            return "".join(pieces) + ELLIPSIS
        pieces.append(piece)
        length += len(piece)
    return "".join(pieces)

"""What one record (line) of a training file must look like, per data format: plain data in, a problem out.

Pure: each check takes one decoded JSON value and returns ``None`` when it is a usable record, else a short
sentence saying what is wrong with it. The dialects choose the check for a job's method or training type; reading
the file is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from airflow_provider_ft.vendors.readers import json_type

RecordCheck = Callable[[object], "str | None"]

#: Speakers a chat message may have (OpenAI's ``developer`` and the older ``function`` included).
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def chat_record(record: object) -> str | None:
    """``{"messages": [message, ...]}``: the chat format of supervised fine-tuning on every vendor."""
    return _object_with(record, messages=_messages)


def openai_preference_record(record: object) -> str | None:
    """OpenAI DPO: ``{"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}``."""
    return _object_with(
        record,
        input=lambda value, where: _object_with(value, where, messages=_messages),
        preferred_output=_messages,
        non_preferred_output=_messages,
    )


def dashscope_preference_record(record: object) -> str | None:
    """DashScope DPO: ``{"messages": [...], "chosen": message, "rejected": message}``."""
    return _object_with(record, messages=_messages, chosen=_message, rejected=_message)


def text_record(record: object) -> str | None:
    """Continued pre-training (DashScope ``cpt``): ``{"text": "..."}``."""
    return _object_with(record, text=_text)


def _object_with(record: object, where: str = "the record", **fields: Callable[[Any, str], str | None]) -> str | None:
    if not isinstance(record, Mapping):
        return f"{where} is a JSON {json_type(record)}, not an object"
    for name, check in fields.items():
        if name not in record:
            return f"{where} has no '{name}'"
        problem = check(record[name], f"'{name}'")
        if problem:
            return problem
    return None


def _messages(value: object, where: str) -> str | None:
    if not isinstance(value, list) or not value:
        return f"{where} is not a non-empty array of messages"
    for index, message in enumerate(value):
        problem = _message(message, f"message {index + 1} of {where}")
        if problem:
            return problem
    return None


def _message(value: object, where: str) -> str | None:
    if not isinstance(value, Mapping):
        return f"{where} is a JSON {json_type(value)}, not a message object"
    role = value.get("role")
    if role not in ROLES:
        return f"{where} has role {role!r:.40}; a role is one of {', '.join(sorted(ROLES))}"
    content = value.get("content")
    if isinstance(content, str | list) or (content is None and ("tool_calls" in value or "function_call" in value)):
        return None
    return f"{where} has no text 'content' (a string or an array of parts)"


def _text(value: object, where: str) -> str | None:
    return None if isinstance(value, str) and value else f"{where} is not a non-empty string"

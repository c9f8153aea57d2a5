"""The hook class of each connection type: Airflow registers a type, and its connection form, by a hook class.

Each is a ``FineTuningHook`` (the vendor follows from the connection's type) named for its type, so that a reader, an
IDE and ``grep`` find it. The form itself is declared once, in ``get_provider_info()``.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_ft import defaults
from airflow_provider_ft.get_provider_info import connection_type_info
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook


def _form_widgets(conn_type: str) -> dict[str, Any]:
    from airflow_provider_ft._compat import connection_form_widgets

    return connection_form_widgets(connection_type_info(conn_type)["conn-fields"])


def _field_behaviour(conn_type: str) -> dict[str, Any]:
    behaviour: dict[str, Any] = connection_type_info(conn_type)["ui-field-behaviour"]
    return {key.replace("-", "_"): value for key, value in behaviour.items()}


# The connection form of each type is declared once, in get_provider_info(). Airflow 3.2+ reads it from there;
# Airflow 2.11 and 3.0 call the two class methods instead, and only those in the ``__dict__`` of the very class that
# registers the connection type (not inherited ones): ``_with_connection_form`` puts them there.


def _with_connection_form(hook_class: type[FineTuningHook]) -> type[FineTuningHook]:
    def get_connection_form_widgets(cls: type[FineTuningHook]) -> dict[str, Any]:
        """The form's extra fields, for Airflow before 3.2 (later versions read ``conn-fields``)."""
        return _form_widgets(cls.conn_type)

    def get_ui_field_behaviour(cls: type[FineTuningHook]) -> dict[str, Any]:
        """Hidden and relabelled form fields, for Airflow before 3.2 (later versions read ``ui-field-behaviour``)."""
        return _field_behaviour(cls.conn_type)

    hook_class.get_connection_form_widgets = classmethod(get_connection_form_widgets)  # type: ignore[method-assign,assignment]
    hook_class.get_ui_field_behaviour = classmethod(get_ui_field_behaviour)  # type: ignore[method-assign,assignment]
    return hook_class


@_with_connection_form
class DashScopeFineTuningHook(FineTuningHook):
    """``FineTuningHook`` for connections of type ``dashscope`` (the connection form of DashScope)."""


@_with_connection_form
class OpenAIFineTuningHook(FineTuningHook):
    """``FineTuningHook`` for connections of type ``openaifinetuning`` (the connection form of OpenAI)."""

    default_conn_name = defaults.OPENAI_CONN_ID
    conn_type = "openaifinetuning"
    hook_name = "Fine-tuning: OpenAI"


@_with_connection_form
class AzureOpenAIFineTuningHook(FineTuningHook):
    """``FineTuningHook`` for connections of type ``azureopenaifinetuning`` (the connection form of Azure OpenAI)."""

    default_conn_name = defaults.AZURE_OPENAI_CONN_ID
    conn_type = "azureopenaifinetuning"
    hook_name = "Fine-tuning: Azure OpenAI"


@_with_connection_form
class TogetherFineTuningHook(FineTuningHook):
    """``FineTuningHook`` for connections of type ``togetherfinetuning`` (the connection form of Together AI)."""

    default_conn_name = defaults.TOGETHER_CONN_ID
    conn_type = "togetherfinetuning"
    hook_name = "Fine-tuning: Together AI"


# The types' old names (with '_', which Airflow warns about in every connection URI) stay registered, so that the
# connections stored under them go on working (CHANGELOG.md, "Old type names").


@_with_connection_form
class OpenAIFineTuningHookOldType(OpenAIFineTuningHook):
    """``OpenAIFineTuningHook`` for connections stored under the type's old name, ``openai_fine_tuning``."""

    conn_type = "openai_fine_tuning"
    hook_name = "Fine-tuning: OpenAI (old type openai_fine_tuning)"


@_with_connection_form
class AzureOpenAIFineTuningHookOldType(AzureOpenAIFineTuningHook):
    """``AzureOpenAIFineTuningHook`` for connections stored under the type's old name, ``azure_openai_fine_tuning``."""

    conn_type = "azure_openai_fine_tuning"
    hook_name = "Fine-tuning: Azure OpenAI (old type azure_openai_fine_tuning)"


@_with_connection_form
class TogetherFineTuningHookOldType(TogetherFineTuningHook):
    """``TogetherFineTuningHook`` for connections stored under the type's old name, ``together_fine_tuning``."""

    conn_type = "together_fine_tuning"
    hook_name = "Fine-tuning: Together AI (old type together_fine_tuning)"

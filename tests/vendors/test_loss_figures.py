"""Each vendor's training figures (step, total steps, training and validation loss) as its dialect reads them.

Every documented shape is a case naming its source; an odd value in these informational fields is "not reported"
(``None``), never an error and never a lost entry.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from airflow_provider_ft.exceptions import MalformedAnswerError
from airflow_provider_ft.jobs import JobEvent
from airflow_provider_ft.loss import LossPoint, loss_curve
from airflow_provider_ft.vendors.azure_openai import AzureOpenAIDialect
from airflow_provider_ft.vendors.dashscope import DashScopeDialect, log_line_figures
from airflow_provider_ft.vendors.openai import OpenAIDialect
from airflow_provider_ft.vendors.together import TogetherDialect

ODD_STEPS: list[Any] = ["10", True, False, -1, 10**12, math.nan, math.inf, None, [], {}, 1.5]
ODD_LOSSES: list[Any] = ["0.5", True, False, 1e300, -1e7, math.nan, -math.inf, None, [], {}, 10**400]


def openai_metrics_event(data: object, event_id: str = "ftevent-1") -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.event",
        "id": event_id,
        "created_at": 1_700_000_000,
        "level": "info",
        "message": "Step 10/100: training loss=0.52",
        "type": "metrics",
        "data": data,
    }


def openai_figures(data: object, dialect: OpenAIDialect | None = None) -> JobEvent:
    page = {"object": "list", "data": [openai_metrics_event(data)], "has_more": False}
    (event,) = (dialect or OpenAIDialect()).parse_events(page, None).events
    return event


# -- OpenAI and Azure OpenAI ----------------------------------------------------------------------------------------


def test_openai_metrics_event_gives_step_and_both_losses() -> None:
    """The names are those of the spec's ``FineTuningJobCheckpoint.metrics`` (step, train_loss,
    train_mean_token_accuracy, valid_loss, valid_mean_token_accuracy, full_valid_loss,
    full_valid_mean_token_accuracy): openai/openai-openapi@f85dbe223d40e1a31cba812ab2d755c7e98a92a3 openapi.yaml, and
    openai/openai-python@e43b422412a9e96c9cc5192c61fffbe2d7e04836
    src/openai/types/fine_tuning/jobs/fine_tuning_job_checkpoint.py (``Metrics``). The event's ``data`` is typed only
    as an object (``FineTuningJobEvent.data``, same revisions, src/openai/types/fine_tuning/fine_tuning_job_event.py)
    and no revision shows a ``metrics`` event: that its ``data`` uses these names (and ``total_steps``) is this
    provider's reading, not a documented fact."""
    data = {"step": 10, "total_steps": 100, "train_loss": 0.52, "train_mean_token_accuracy": 0.8, "valid_loss": 0.61}
    event = openai_figures(data)
    assert (event.step, event.total_steps, event.train_loss, event.valid_loss) == (10, 100, 0.52, 0.61)


def test_openai_full_valid_loss_stands_in_for_a_missing_valid_loss() -> None:
    """The spec's checkpoint example (openai/openai-openapi@f85dbe2 ``listFineTuningJobCheckpoints``) reports
    ``full_valid_loss`` without ``valid_loss``; the batch ``valid_loss`` is preferred where both come."""
    assert openai_figures({"step": 2000, "full_valid_loss": 0.134}).valid_loss == 0.134
    assert openai_figures({"step": 20, "valid_loss": 11.32, "full_valid_loss": 0.317}).valid_loss == 11.32


def test_openai_step_sent_as_a_whole_float_is_that_step() -> None:
    """The spec types ``FineTuningJobCheckpoint.metrics.step`` as a number (openai-openapi@f85dbe2): 88.0 is 88."""
    assert openai_figures({"step": 88.0, "train_loss": 0.478}).step == 88


@pytest.mark.parametrize(("odd_step", "odd_loss"), list(zip(ODD_STEPS, ODD_LOSSES, strict=True)))
def test_openai_odd_figures_are_not_reported_and_the_event_is_kept(odd_step: object, odd_loss: object) -> None:
    event = openai_figures({"step": odd_step, "total_steps": odd_step, "train_loss": odd_loss, "valid_loss": odd_loss})
    assert event.cursor == "ftevent-1"
    assert event.message == "Step 10/100: training loss=0.52"
    assert (event.step, event.total_steps, event.train_loss, event.valid_loss) == (None, None, None, None)


@pytest.mark.parametrize("data", [None, [], "loss=1", {"huge": 10**400}])
def test_openai_event_with_data_that_is_no_figures_is_kept(data: object) -> None:
    event = openai_figures(data)
    assert (event.step, event.train_loss, event.valid_loss) == (None, None, None)


def test_openai_a_negative_loss_is_a_loss() -> None:
    """Losses of some methods may be below zero; only a non-finite or huge one (``MAX_LOSS``) is not believed."""
    assert openai_figures({"step": 3, "train_loss": -0.25}).train_loss == -0.25


def test_azure_reads_the_openai_event_shape() -> None:
    """Microsoft's ``FineTuningJobEvent`` has ``type`` ``message`` or ``metrics`` and an untyped ``data``, and its
    ``FineTuningJobCheckpoint.metrics`` the same names as OpenAI's: Azure/azure-rest-api-specs, specification/
    cognitiveservices/data-plane/AzureOpenAI/authoring/stable/2024-10-21/azureopenai.json (at
    3ecc2097448a36c8fba6e1a88b737b50a146ceaf) and examples/get_finetuning_job_checkpoints.json (at
    df74858bfda6128d16c98265db2a6f42e89b20ff: step 10, train_loss 0.478, valid_loss 10.112, full_valid_loss 0.567).
    No published example shows a ``metrics`` event (examples/get_finetuning_job_events.json, 132b90d: three
    ``message`` events)."""
    event = openai_figures({"step": 10, "train_loss": 0.478, "valid_loss": 10.112}, AzureOpenAIDialect())
    assert (event.step, event.train_loss, event.valid_loss) == (10, 0.478, 10.112)


# -- DashScope ------------------------------------------------------------------------------------------------------

#: The first line of the "Query fine-tuning logs" response example, https://www.alibabacloud.com/help/en/model-studio/
#: get-fine-tuning-job-logs-api (Last Updated Jun 06, 2026); also tests/conformance/dashscope/reference-logs-offset-10.
DOCUMENTED_SUMMARY = (
    "{'train_runtime': 216.3999, 'train_samples_per_second': 2.066, 'train_steps_per_second': 0.014, "
    "'train_loss': 0.9122632344563802, 'epoch': 0.8571428571428571}"
)


def dashscope_events(*lines: str) -> list[JobEvent]:
    return DashScopeDialect().parse_events({"output": {"total": len(lines), "logs": list(lines)}}, None).events


def test_dashscope_documented_summary_line_gives_its_training_loss_and_no_step() -> None:
    (event,) = dashscope_events(DOCUMENTED_SUMMARY)
    assert (event.step, event.train_loss, event.valid_loss) == (None, 0.9122632344563802, None)
    assert event.message == DOCUMENTED_SUMMARY
    assert loss_curve([event]) == [], "a loss without a step is no point of the curve"


def test_dashscope_figure_lines_with_a_step_are_points() -> None:
    """Not documented by Alibaba: per-step lines. The documented line is the dict a Hugging Face ``Trainer`` logs at
    the end of training; this reads its per-step and evaluation dicts the same way (``loss``, ``eval_loss``) with a
    ``step`` or ``global_step`` where the line carries one (what the emulator writes, docs/wire/dashscope.md)."""
    events = dashscope_events(
        "{'loss': 1.25, 'learning_rate': 1.6e-05, 'epoch': 0.1, 'step': 10}",
        "{'eval_loss': 1.4, 'eval_runtime': 3.2, 'epoch': 0.1, 'step': 10}",
        "{'loss': 0.9, 'global_step': 20}",
    )
    assert [(e.step, e.train_loss, e.valid_loss) for e in events] == [
        (10, 1.25, None),
        (10, None, 1.4),
        (20, 0.9, None),
    ]
    assert loss_curve(events) == [LossPoint(10, 1.25, 1.4), LossPoint(20, 0.9, None)]


@pytest.mark.parametrize(
    "line",
    [
        "{'loss': 'high', 'step': '10'}",
        "{'loss': nan, 'step': -3}",
        "{'loss': 1e400, 'step': 1e30}",
        "{'loss': True, 'step': 10.5}",
        "2024-10-29 17:11:25,130 - INFO - training usage 279808",
        "step 10/100 loss 0.3",
        "{'loss': 0.5, 'step': 10",
        "{" + "'loss': 0.5, " * 300 + "'step': 10}",
    ],
)
def test_dashscope_odd_lines_keep_their_entry_without_figures(line: str) -> None:
    (event,) = dashscope_events(line)
    assert event.message == line
    assert (event.step, event.train_loss, event.valid_loss) == (None, None, None)


def test_dashscope_figures_are_read_in_bounded_time() -> None:
    nasty = "{" + "'a': " * 5000 + "1e" * 5000 + "}"
    assert log_line_figures(nasty) == {}
    near_limit = "{'" + "a" * 64 + "': " + "9" * 1800 + "}"
    assert len(log_line_figures(near_limit)) <= 1


# -- Together AI ----------------------------------------------------------------------------------------------------


def test_together_event_gives_step_and_total_steps_but_no_loss() -> None:
    """``FineTuneEvent`` requires integer ``step`` and ``total_steps`` and has no loss field:
    togethercomputer/openapi@090263aa0fde006d9cd958bef52719958079bbc4 openapi.yaml (``FineTuneEvent``). Its message
    text is not documented, so no loss is read from it."""
    event = {"object": "fine-tune-event", "created_at": "2026-01-01T00:00:00Z", "message": "loss 0.3", "type": "x"}
    (parsed,) = TogetherDialect().parse_events({"data": [{**event, "step": 40, "total_steps": 100}]}, None).events
    assert (parsed.step, parsed.total_steps, parsed.train_loss, parsed.valid_loss) == (40, 100, None, None)
    (odd,) = TogetherDialect().parse_events({"data": [{**event, "step": "40", "total_steps": -1}]}, None).events
    assert (odd.step, odd.total_steps) == (None, None)


def test_together_metrics_answer_gives_the_points() -> None:
    """``GET /fine-tunes/{id}/metrics`` answers ``{"metrics": [row, ...]}``, rows flat objects of numbers, the
    example ``{"train/loss": 0.5, "train/learning_rate": 0.0001, "train/global_step": 7}``:
    togethercomputer/openapi@090263aa0fde006d9cd958bef52719958079bbc4 openapi.yaml (added in 62f42f2, 2026-04-27);
    the SDK's chart reads every row's step from ``train/global_step`` (PyPI together 3.1.1,
    together/lib/cli/components/plot_finetune_metrics.py ``_collect_series``). Evaluation rows carry ``eval/*`` keys
    (https://docs.together.ai/docs/fine-tuning/monitoring, "Sample output"); the name ``eval/loss`` is this
    provider's reading: the stored page is cut before its list of metrics."""
    answer = {
        "metrics": [
            {"train/loss": 0.5, "train/learning_rate": 0.0001, "train/global_step": 7},
            {"train/loss": 0.45, "train/learning_rate": 0.00009, "train/global_step": 14},
            {"eval/loss": 0.6, "train/global_step": 14},
        ]
    }
    points = TogetherDialect().parse_metrics(answer)
    assert points == [LossPoint(7, 0.5, None), LossPoint(14, 0.45, None), LossPoint(14, None, 0.6)]
    assert loss_curve(points) == [LossPoint(7, 0.5, None), LossPoint(14, 0.45, 0.6)]


def test_together_metrics_request_is_a_get_of_the_job() -> None:
    request = TogetherDialect().metrics_request("ft-0123")
    assert (request.method, request.path, request.params) == ("GET", "/fine-tunes/ft-0123/metrics", ())


@pytest.mark.parametrize(
    "rows",
    [
        [{"train/loss": "0.5", "train/global_step": 7}],
        [{"train/loss": 0.5, "train/global_step": -7}],
        [{"train/loss": math.nan, "train/global_step": 7}],
        [{"train/learning_rate": 0.1, "train/global_step": 7}],
        ["row", 3, None],
    ],
)
def test_together_odd_metrics_rows_are_skipped(rows: list[Any]) -> None:
    assert TogetherDialect().parse_metrics({"metrics": rows}) == []


def test_together_metrics_answer_without_rows_has_no_point_and_a_wrong_envelope_is_refused() -> None:
    assert TogetherDialect().parse_metrics({}) == []
    assert TogetherDialect().parse_metrics({"metrics": None}) == []
    with pytest.raises(MalformedAnswerError):
        TogetherDialect().parse_metrics({"metrics": "train/loss=0.5"})

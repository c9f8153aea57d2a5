"""``TaskIdentity``: one key per task instance and namespace, the same for every try, unlike any other's."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_ft.identity import TaskIdentity

BASE = TaskIdentity("train_dag", "train", "manual__2026-01-01T00:00:00+00:00", map_index=-1, namespace="prod")
texts = st.text(max_size=20)
identities = st.builds(TaskIdentity, texts, texts, texts, st.integers(-1, 10_000), texts)


def test_the_key_is_the_sha256_of_the_published_recipe() -> None:
    recipe = json.dumps(["v1", "prod", "train_dag", "train", BASE.run_id, -1]).encode()
    assert BASE.key == hashlib.sha256(recipe).hexdigest()


def test_the_tag_is_a_short_name_safe_prefix_of_the_key() -> None:
    assert re.fullmatch(r"af-[0-9a-f]{29}", BASE.tag)
    assert BASE.key.startswith(BASE.tag.removeprefix("af-"))
    assert len(BASE.tag) == 32


def test_every_part_changes_the_key() -> None:
    others = [
        replace(BASE, dag_id="other"),
        replace(BASE, task_id="other"),
        replace(BASE, run_id="other"),
        replace(BASE, map_index=0),
        replace(BASE, namespace=""),
    ]
    assert len({BASE.key, *(other.key for other in others)}) == len(others) + 1


@given(identities, identities)
def test_different_task_instances_never_share_a_key(first: TaskIdentity, second: TaskIdentity) -> None:
    assert (first.key == second.key) == (first == second)


def test_separators_inside_ids_cannot_make_two_task_instances_alike() -> None:
    first = TaskIdentity("d", "t", "r|x", namespace="n|d")
    second = TaskIdentity("d|t", "r", "x", namespace="n|d")
    assert first.key != second.key


def test_describe_names_the_task_instance() -> None:
    assert BASE.describe() == f"train_dag.train of run {BASE.run_id}"
    assert replace(BASE, map_index=3).describe() == f"train_dag.train[3] of run {BASE.run_id}"

"""The dataset registry is consistent with itself and is what the rest of the engine lists."""

import re

import pytest

from obs_pipelines import config
from obs_pipelines.datasets import ALL, INGESTED, PILLAR_DATASETS, REGISTRY, Dataset, dataset
from obs_pipelines.lake import delta


@pytest.mark.parametrize("registered", REGISTRY, ids=lambda d: d.name)
def test_sort_keys_and_time_column_are_columns_of_the_schema(registered: Dataset) -> None:
    columns = set(registered.schema.names)
    assert set(registered.sort_keys) <= columns
    assert registered.time_column is None or registered.time_column in columns
    assert registered.description and registered.origin


def test_config_lake_and_freshness_read_their_lists_from_the_registry() -> None:
    assert [t.dataset for t in delta.layouts()] == list(ALL)
    assert config.DATASETS == INGESTED
    assert config.PILLAR_DATASETS == PILLAR_DATASETS
    assert PILLAR_DATASETS["metrics"] == ("metric_series", "metric_samples")
    assert config.DATASET_PILLARS["sli_minutes"] == "metrics"


def test_an_unknown_dataset_is_one_line_naming_the_known_ones() -> None:
    with pytest.raises(
        KeyError, match=re.escape("no dataset 'metric_sample'; known: metric_series")
    ):
        dataset("metric_sample")

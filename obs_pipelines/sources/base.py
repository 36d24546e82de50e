"""What every metrics source hands the lake: Arrow tables of series and raw samples for a window.

A source knows nothing of the lake; it yields chunks (one per request, or per simulated slice) so a
long window streams rather than materializing in one piece.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from obs_pipelines.windows import TimeWindow


@dataclass(frozen=True)
class MetricChunk:
    """Samples for some series over part of a window: ``series`` rows describe ``samples`` ids."""

    series: pa.Table
    samples: pa.Table


class MetricSource(Protocol):
    name: str

    def read_metrics(self, window: TimeWindow) -> Iterator[MetricChunk]:
        """Every raw sample with timestamp in ``[window.start, window.end)``, exactly once."""
        ...


class TableSource(Protocol):
    """A source of one lake dataset other than metrics: yields tables in that dataset's schema
    (``obs_pipelines.schemas.SCHEMAS[dataset]``) for rows whose time falls in the window."""

    name: str
    dataset: str

    def read(self, window: TimeWindow) -> Iterator[pa.Table]:
        """Every row of ``window`` exactly once; raise ``SourceError`` rather than return a partial window."""
        ...

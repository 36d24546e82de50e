"""The lake: Parquet partitions in hot, warm and cold tiers on a local folder or S3."""

from obs_pipelines.lake.lake import Lake, PartitionInfo
from obs_pipelines.lake.paths import LakeFile
from obs_pipelines.lake.storage import LockBusy
from obs_pipelines.lake.writer import WrittenPartition

__all__ = ["Lake", "LakeFile", "LockBusy", "PartitionInfo", "WrittenPartition"]

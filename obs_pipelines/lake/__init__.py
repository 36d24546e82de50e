"""The lake: one Delta Lake table per dataset, on a local folder or S3."""

from obs_pipelines.lake.lake import Lake, PartitionInfo, WrittenPartition

__all__ = ["Lake", "PartitionInfo", "WrittenPartition"]

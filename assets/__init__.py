"""Dagster assets and asset checks: thin layers over the obs_pipelines engine."""

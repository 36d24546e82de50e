"""Dagster schedules and sensors: when assets materialize, and what flags stale data."""

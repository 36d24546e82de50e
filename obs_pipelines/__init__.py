"""obs-pipelines: a long-term observability lake and reliability scorecard.

The engine lives here as plain Python (no Dagster imports outside ``definitions``,
``resources`` and the CLI commands that launch runs).
"""

__version__ = "0.1.0"

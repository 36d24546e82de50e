"""The report SQL (``*.sql``), installed as the package ``obs_pipelines.sql`` (see pyproject's
package-dir) and read with importlib.resources. This file makes it a regular package: setuptools'
editable install cannot import a mapped folder without one, so ``pip install -e .`` finds it too.
"""

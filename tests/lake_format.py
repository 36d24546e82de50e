"""Which lake format tests write: ``OBS_TEST_LAKE_FORMAT=delta`` reruns a test file on Delta
tables (the Makefile's ``test`` target does so for the exactness suites)."""

import os


def lake_format() -> str:
    return os.environ.get("OBS_TEST_LAKE_FORMAT", "files")

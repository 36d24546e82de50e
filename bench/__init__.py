"""Benchmarks of the engine against real servers on 127.0.0.1 (``make bench``)."""

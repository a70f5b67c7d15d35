"""The benchmarks' options, fixtures and CSV writing come from the sharebench pytest plugin
(``src/sharebench/pytest_plugin.py``, loaded through its ``pytest11`` entry point)."""

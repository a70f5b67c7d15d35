"""The one build step pyproject.toml cannot state without an experimental table: the optional
C extension ``sharebench._fastatomic`` (an atomic fetch-add on a buffer, and the same in a C
loop for the hardware's limit). Everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sharebench._fastatomic",
            sources=["src/sharebench/_fastatomic.c"],
            # No compiler, no extension: the install still succeeds, and the shm-fetchadd and
            # fetchadd-c benchmarks are skipped with the reason (mechanisms/fastatomic.py).
            optional=True,
        ),
    ],
)

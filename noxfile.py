"""Sessions: ``tests`` and ``lint`` (default); ``bench``, ``plot``, ``compare``, ``ab``,
``baseline``.

Dependencies come from pyproject.toml (project dependencies and dependency groups), so
this file never lists a package of its own.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install(session: nox.Session, *groups: str) -> None:
    session.install("-e", ".")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pass pytest options after --)."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Lint with ruff, type-check src/ with mypy --strict, audit the workflows with zizmor."""
    _install(session, "lint")
    session.run("ruff", "check", "src", "tests", "bench", "noxfile.py", "setup.py")
    session.run("mypy")
    # The workflows run code from pull requests: nothing above informational may be found
    # (offline: the audits that ask GitHub's API are left out; exit code != 0 on a finding).
    session.run("zizmor", "--offline", "--no-progress", "--color", "never",
                "--persona", "pedantic", "--min-severity", "low", ".github/workflows")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmarks (quick profile) into results/latest.csv and render the charts."""
    _install(session)
    # A failed benchmark is a row with status "error: ..." (pytest exits 1): render the charts
    # anyway, then `report --check` fails the session if any row is an error.
    session.run("pytest", "bench", *session.posargs, success_codes=[0, 1])
    csv = _option(session.posargs, "--sharebench-csv") or "results/latest.csv"
    # The committed charts in plots/ belong to the default run; another CSV gets its charts
    # beside it (results/mine.csv -> results/mine-plots/), so a side run never replaces them.
    default = Path(csv).resolve() == Path("results/latest.csv").resolve()
    plots = "plots" if default else str(Path(csv).with_name(Path(csv).stem + "-plots"))
    session.run("sharebench", "plot", csv, "--out", plots)
    session.run("sharebench", "report", csv, "--check")


def _option(args: list[str], name: str) -> str | None:
    """Value of ``--name VALUE`` or ``--name=VALUE`` among the session's posargs."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


@nox.session(default=False)
def plot(session: nox.Session) -> None:
    """Render the charts and plots/index.html from a results CSV (default results/latest.csv)."""
    _install(session)
    session.run("sharebench", "plot", *(session.posargs or ["results/latest.csv"]))


@nox.session(default=False)
def compare(session: nox.Session) -> None:
    """Compare two runs (default baseline vs latest in results/); exit 1 on a regression."""
    _install(session)
    args = session.posargs or ["results/baseline.csv", "results/latest.csv"]
    session.run("sharebench", "compare", *args)


@nox.session(default=False)
def ab(session: nox.Session) -> None:
    """Interleaved A/B run: `nox -s ab -- [A] [B] [options] [-- bench options]`; exit 1 on a
    regression."""
    _install(session)
    session.run("sharebench", "ab", *session.posargs)


@nox.session(default=False)
def baseline(session: nox.Session) -> None:
    """Refresh the committed reference run: results/baseline.csv (+ rounds), charts, README."""
    _install(session)
    session.run("pytest", "bench", "--sharebench-csv", "results/baseline.csv", *session.posargs)
    session.run("sharebench", "plot", "results/baseline.csv", "--out", "plots")
    session.run("sharebench", "report", "results/baseline.csv", "--readme", "README.md",
                "--check")

"""The README's test command is what CI runs."""

import re

from conftest import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_readme_opens_with_the_two_commands():
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("-m bayes_scaling.fit")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci.splitlines()
    assert "set -euo pipefail" in ci


def test_pytest_options_deselect_nothing():
    """CI runs every test: the configured addopts (and the README's command) skip no marker, name
    or path, so a test that is written is a test that runs."""
    import shlex
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    words = shlex.split(config.get("addopts", "")) + shlex.split(readme_commands()[1].split("pytest", 1)[1])
    deselecting = ("-m", "-k", "--deselect", "--ignore", "--ignore-glob", "-x", "--exitfirst", "--lf", "--last-failed",
                   "--sw", "--stepwise")
    assert not [w for w in words if w.split("=", 1)[0] in deselecting], words
    assert "testpaths" not in config or config["testpaths"] == ["tests"]

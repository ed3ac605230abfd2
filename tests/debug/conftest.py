from tests.cli.conftest import cli  # noqa: F401  (the command-line fixture, shared)

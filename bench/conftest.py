"""The test suite's fixtures (real hosts, git server, workers, the `world`
users) for the scenarios here; loaded only when bench/ files are run."""

pytest_plugins = ["tests.conftest"]

"""Root conftest: registers the real-server fixtures for every test directory (tests/ and services/*/tests)."""

pytest_plugins = ["tests.harness.plugin"]

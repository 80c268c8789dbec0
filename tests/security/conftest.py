"""Abuse of the API goes through the real server and worker (fixtures of tests/api)."""

from tests.api.conftest import api, api_settings, tenant, worker  # noqa: F401 - fixtures used here

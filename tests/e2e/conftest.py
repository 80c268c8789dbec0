"""The browser and Node client tests drive the real server (fixtures of tests/api)."""

from tests.api.conftest import api, api_settings, tenant, worker  # noqa: F401 - fixtures used here

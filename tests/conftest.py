import pytest
from django.db import connection


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` need row locks that SQLite does not have.

    The suite runs once on SQLite and once on PostgreSQL (see .ci/run), so these
    tests run in the PostgreSQL pass and are reported as skipped in the other.
    """
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL; runs in the PostgreSQL pass")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)

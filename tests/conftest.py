import pytest
from django.db import connection

from reports.standin import MessagesStandIn, sample_recordings

STANDIN_API_KEY = "sk-ant-test-standin-key"


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


@pytest.fixture
def claude_standin(settings):
    """A running Messages API stand-in answering with the bundled recordings.

    Settings point the client at it with a test key; it stops after the test,
    which also ends any request it is still holding (timeouts, latency).
    """
    standin = MessagesStandIn(sample_recordings())
    standin.start()
    settings.ANTHROPIC_BASE_URL = standin.base_url
    settings.ANTHROPIC_API_KEY = STANDIN_API_KEY
    yield standin
    standin.stop()

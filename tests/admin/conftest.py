import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

STAFF_PERMISSIONS = [
    "reports.view_report",
    "reports.change_report",
    "reports.reprocess_report",
    "reports.ignore_report",
    "reports.view_dashboard",
    "violations.view_violation",
    "violations.change_violation",
    "violations.verify_violation",
    "violations.export_violation",
    "violations.split_violation",
]

VOLUNTEER_PERMISSIONS = ["reports.view_report", "violations.view_violation"]


def make_user(username: str, permissions: list[str]) -> User:
    """A staff user holding exactly ``permissions`` (``app_label.codename``)."""
    user = User.objects.create_user(username, password="secret-pass", is_staff=True)
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_client(db) -> Client:
    return logged_in(make_user("editor", STAFF_PERMISSIONS))


@pytest.fixture
def volunteer_client(db) -> Client:
    return logged_in(make_user("volunteer", VOLUNTEER_PERMISSIONS))

"""Admin pages that are not a model's change list: the processing dashboard."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse

from .dashboard import dashboard_data
from .models import Report


def dashboard_view(request: HttpRequest) -> TemplateResponse:
    """The processing dashboard; needs reports.view_dashboard (superusers have it)."""
    if not request.user.has_perm("reports.view_dashboard"):
        raise PermissionDenied

    context = {
        **admin.site.each_context(request),
        "title": "Processing dashboard",
        "opts": Report._meta,
        **dashboard_data(),
    }
    return TemplateResponse(request, "admin/reports/dashboard.html", context)

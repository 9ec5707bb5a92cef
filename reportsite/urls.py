from django.contrib import admin
from django.urls import path

admin.site.site_header = "Violations register"
admin.site.site_title = "Violations register"
admin.site.index_title = "Reports and violations"

urlpatterns = [
    path("admin/", admin.site.urls),
]

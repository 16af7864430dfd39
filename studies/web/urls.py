"""Page routes: /study/<slug>/ for participants, /study-admin/preview/<sample id>/ for staff."""
from django.urls import path

from . import views

app_name = "study_web"

urlpatterns = [
    path("study/<slug:slug>/", views.study_page, name="study"),
    path("study-admin/preview/<int:sample_id>/", views.sample_preview, name="sample_preview"),
]

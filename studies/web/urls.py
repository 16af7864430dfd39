"""Page routes: /study/<slug>/ and /series/<slug>/ for participants (each with its decline page),
/study-admin/preview/<sample id>/ for staff."""
from django.urls import path

from studies.web import views

app_name = "study_web"

urlpatterns = [
    path("study/<slug:slug>/", views.study_page, name="study"),
    path("study/<slug:slug>/declined/", views.declined_page, name="declined"),
    path("series/<slug:slug>/", views.series_page, name="series"),
    path("series/<slug:slug>/declined/", views.series_declined_page, name="series_declined"),
    path("study-admin/preview/<int:sample_id>/", views.sample_preview, name="sample_preview"),
]

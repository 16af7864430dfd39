"""Participant API routes (mounted under /api/)."""
from django.urls import path

from studies import views
app_name = "studies"

urlpatterns = [
    path("studies/<slug:slug>/", views.StudyDetail.as_view(), name="study"),
    path("studies/<slug:slug>/participations/", views.StartParticipation.as_view(), name="start"),
    path("participations/<str:token>/", views.ParticipationDetail.as_view(), name="participation"),
    path("participations/<str:token>/next/", views.NextTrial.as_view(), name="next"),
    path("participations/<str:token>/answers/", views.SubmitAnswer.as_view(), name="answer"),
    path("participations/<str:token>/complete/", views.CompleteParticipation.as_view(), name="complete"),
    path("motions/<str:key>/", views.MotionDetail.as_view(), name="motion"),
    path("series/<slug:slug>/", views.SeriesDetail.as_view(), name="series"),
    path("series/<slug:slug>/participations/", views.StartSeries.as_view(), name="series_start"),
    path("series-participations/<str:token>/", views.SeriesParticipationDetail.as_view(),
         name="series_participation"),
]

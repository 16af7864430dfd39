"""Admin for researchers: create / open / close studies, watch progress, read the report
with its figures, download exports and preview any stimulus pair."""
from __future__ import annotations

import base64
import json

from django.contrib import admin, messages
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from attacks.core.reporting.figures import stick_figure_strip

from studies import assignment

from studies import reports
from studies.protocols.base import ConfigurationError
from studies.models import (MotionHandle, Participant, Response, SeriesParticipant, SeriesStudy, Stimulus, Study,
                     StudySeries, Trial)


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "kind", "status", "started", "completed", "screened_out", "abandoned",
                    "active", "target", "links")
    list_filter = ("kind", "status")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("status", "created_at", "opened_at", "closed_at", "participant_link", "progress_table")
    actions = ["open_studies", "close_studies", "close_now", "release_abandoned", "build_pools"]

    def get_readonly_fields(self, request, obj=None):
        """Status changes through the actions only; kind and configuration are frozen once
        the study has opened (Study.save refuses such edits as well)."""
        frozen = ("kind", "configuration") if obj is not None and obj.status != Study.DRAFT else ()
        return frozen + tuple(self.readonly_fields)

    def _progress(self, obj):
        if not hasattr(obj, "_progress_cache"):
            obj._progress_cache = obj.progress()
        return obj._progress_cache

    @admin.display(description="started")
    def started(self, obj):
        return self._progress(obj)["started"]

    @admin.display(description="completed")
    def completed(self, obj):
        return self._progress(obj)[Participant.COMPLETED]

    @admin.display(description="screened out")
    def screened_out(self, obj):
        return self._progress(obj)[Participant.SCREENED_OUT]

    @admin.display(description="abandoned")
    def abandoned(self, obj):
        return self._progress(obj)[Participant.ABANDONED]

    @admin.display(description="active")
    def active(self, obj):
        return self._progress(obj)[Participant.ACTIVE]

    @admin.display(description="target")
    def target(self, obj):
        return obj.config["target_participants"] or "-"

    @admin.display(description="report / exports")
    def links(self, obj):
        return format_html('<a href="{}">report</a> · <a href="{}">trials.csv</a> · <a href="{}">participants.csv</a>'
                           ' · <a href="{}">json</a> · <a href="{}?test=1" title="a test participation, kept out of '
                           'every analysis">test run</a>',
                           reverse("admin:studies_study_report", args=[obj.pk]),
                           reverse("admin:studies_study_export", args=[obj.pk, "trials.csv"]),
                           reverse("admin:studies_study_export", args=[obj.pk, "participants.csv"]),
                           reverse("admin:studies_study_export", args=[obj.pk, "report.json"]),
                           obj.participant_path())

    @admin.display(description="participant link")
    def participant_link(self, obj):
        return obj.participant_path() if obj.pk else "-"

    @admin.display(description="progress")
    def progress_table(self, obj):
        if not obj.pk:
            return "-"
        return format_html("<table>{}</table>", format_html_join(
            "", "<tr><td>{}</td><td>{}</td></tr>", self._progress(obj).items()))

    @admin.action(description="Open selected studies (build their stimulus pools)")
    def open_studies(self, request, queryset):
        opened = []
        for study in queryset:
            try:
                if assignment.build_pool(study) == 0:
                    self.message_user(request, f"{study.slug}: no samples match its filters; left closed",
                                      messages.WARNING)
                    continue
                assignment.open_study(study)
            except ConfigurationError as e:  # e.g. a pool too small for the trial count, with the numbers
                self.message_user(request, f"{study.slug}: {e}; left as it was", messages.ERROR)
                continue
            opened.append(study.slug)
        if opened:
            self.message_user(request, f"Opened: {', '.join(opened)}.")

    @admin.action(description="Close selected studies (active participants may still finish)")
    def close_studies(self, request, queryset):
        for study in queryset:
            assignment.close_study(study)
            self.message_user(request, f"{study.slug}: {study.status}"
                              + (" until its active participants finish" if study.status == Study.CLOSING else ""))

    @admin.action(description="Close now (active participants can no longer answer)")
    def close_now(self, request, queryset):
        for study in queryset:
            assignment.close_study(study, now=True)
        self.message_user(request, "Closed.")

    @admin.action(description="Return abandoned participants' stimuli to the pool")
    def release_abandoned(self, request, queryset):
        n = sum(assignment.release_abandoned(study) for study in queryset)
        self.message_user(request, f"{n} participations marked abandoned.")

    @admin.action(description="Build stimulus pools")
    def build_pools(self, request, queryset):
        for study in queryset:
            self.message_user(request, f"{study.slug}: {assignment.build_pool(study)} stimuli")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("<int:pk>/report/", view(self.report_view), name="studies_study_report"),
                path("<int:pk>/export/<str:name>", view(self.export_view), name="studies_study_export"),
                ] + super().get_urls()

    def _study(self, pk):
        study = Study.objects.filter(pk=pk).first()
        if study is None:
            raise Http404("no such study")
        return study

    def report_view(self, request, pk):
        study = self._study(pk)
        simulated = request.GET.get("simulated") == "1"  # the simulated participants' report, never mixed
        summary = reports.build_report(study, simulated=simulated)
        figures = reports.report_figures(study, summary)
        tables = {**summary["statistics"], "table4": summary.get("table4") or [],
                  "verdicts (each metric alone)": summary["verdicts"]["univariate"],
                  "verdicts (all metrics together)": summary["verdicts"]["joint"]}
        context = {**self.admin_site.each_context(request), "study": study, "opts": self.model._meta,
                   "title": f"Report: {study.name}{' (SIMULATED participants)' if simulated else ''}",
                   "summary": summary, "simulated": simulated,
                   "sections": [(k, [{c: round(x, 4) if isinstance(x, float) else x for c, x in row.items()}
                                     for row in v])
                                for k, v in tables.items() if isinstance(v, list) and v
                                and isinstance(v[0], dict)],
                   "figures": [(n, base64.b64encode(png).decode()) for n, png in figures.items()],
                   "exports": [(n, reverse("admin:studies_study_export", args=[study.pk, n]))
                               for n in ("trials.csv", "participants.csv", "report.json")]}
        return TemplateResponse(request, "admin/studies/study/report.html", context)

    def export_view(self, request, pk, name):
        study = self._study(pk)
        if name == "trials.csv":
            body, kind = reports.trials_csv(reports.analyse(study)[1]), "text/csv; charset=utf-8"
        elif name == "participants.csv":
            body, kind = reports.participants_csv(reports.analyse(study)[2]), "text/csv; charset=utf-8"
        elif name == "report.json":
            body, kind = json.dumps(reports.build_report(study), indent=2, default=str), "application/json"
        else:
            raise Http404("unknown export")
        response = HttpResponse(body, content_type=kind)
        response["Content-Disposition"] = f'attachment; filename="{study.slug}-{name}"'
        return response


def pair_preview_png(left: MotionHandle, right: MotionHandle | None) -> bytes:
    """Stick figures of the left motion with the right one drawn over it in orange."""
    skeleton = left.sample.clip.dataset.get_skeleton()
    return stick_figure_strip(left.motion(), skeleton, overlay=right.motion() if right else None)


@admin.register(Stimulus)
class StimulusAdmin(admin.ModelAdmin):
    list_display = ("id", "study", "condition", "usage_count", "samples")
    list_filter = ("study", "condition")
    readonly_fields = ("study", "condition", "samples", "usage_count", "preview")

    def get_urls(self):
        return [path("<int:pk>/preview/<int:sample>.png", self.admin_site.admin_view(self.preview_png),
                     name="studies_stimulus_preview")] + super().get_urls()

    def preview_png(self, request, pk, sample):
        stimulus = Stimulus.objects.filter(pk=pk).first()
        if stimulus is None or sample not in stimulus.samples.values():
            raise Http404("no such stimulus sample")
        handles = {h.variant: h for h in MotionHandle.objects.filter(study=stimulus.study_id, sample_id=sample,
                                                                       side="left")}
        return HttpResponse(pair_preview_png(handles["original"], handles["adversarial"]), content_type="image/png")

    @admin.display(description="original (blue) with attacked overlay (orange)")
    def preview(self, obj):
        return format_html_join("", '<p>{}</p><img src="{}" alt="preview of {}"><br>', (
            (role, reverse("admin:studies_stimulus_preview", args=[obj.pk, sid]), role)
            for role, sid in obj.samples.items()))


class ResponseInline(admin.StackedInline):
    model = Response
    extra = 0
    readonly_fields = ("answer", "is_correct", "response_time_ms", "playback", "submitted_at")
    exclude = ("participant",)


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    list_display = ("participant", "position", "is_practice", "condition", "correct")
    list_filter = ("participant__study", "condition", "is_practice")
    readonly_fields = ("participant", "key", "position", "is_practice", "condition", "stimulus", "left", "right",
                       "options", "correct", "design", "preview")
    inlines = [ResponseInline]

    def get_urls(self):
        return [path("<int:pk>/preview.png", self.admin_site.admin_view(self.preview_png),
                     name="studies_trial_preview")] + super().get_urls()

    def preview_png(self, request, pk):
        trial = Trial.objects.select_related("left__sample__clip__dataset", "right__sample").filter(pk=pk).first()
        if trial is None:
            raise Http404("no such trial")
        return HttpResponse(pair_preview_png(trial.left, trial.right), content_type="image/png")

    @admin.display(description="left (blue) and right (orange overlay)")
    def preview(self, obj):
        return format_html('<img src="{}" alt="trial {} preview">', reverse("admin:studies_trial_preview",
                                                                            args=[obj.pk]), obj.position)


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ("id", "pseudonym", "study", "status", "is_test", "prolific_pid", "consent_version", "started_at",
                    "last_seen_at", "completed_at", "sensitivity_accuracy")
    list_filter = ("study", "status", "is_test")
    search_fields = ("prolific_pid", "prolific_session_id", "pseudonym")
    readonly_fields = ("study", "token", "pseudonym", "is_test", "series_participant", "prolific_pid",
                       "prolific_study_id", "prolific_session_id", "consent_at", "consent_version", "questionnaire",
                       "browser", "screen", "seed", "sensitivity_accuracy", "started_at", "last_seen_at",
                       "completed_at")


class SeriesStudyInline(admin.TabularInline):
    model = SeriesStudy
    extra = 1
    ordering = ("position",)


@admin.register(StudySeries)
class StudySeriesAdmin(admin.ModelAdmin):
    """A series: several studies through one link (/series/<slug>/), one consent, one code."""

    list_display = ("name", "slug", "studies", "participants_by_status", "link")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [SeriesStudyInline]

    @admin.display(description="studies, in order")
    def studies(self, obj):
        return " → ".join(s.slug for s in obj.ordered_studies())

    @admin.display(description="participants")
    def participants_by_status(self, obj):
        counts = dict(obj.participants.values_list("status").annotate(n=Count("id")).order_by())
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "-"

    @admin.display(description="participant link")
    def link(self, obj):
        return format_html('{} · <a href="{}?test=1">test run</a>', obj.participant_path(), obj.participant_path())


@admin.register(SeriesParticipant)
class SeriesParticipantAdmin(admin.ModelAdmin):
    list_display = ("id", "series", "status", "is_test", "prolific_pid", "consent_version", "started_at",
                    "completed_at")
    list_filter = ("series", "status", "is_test")
    search_fields = ("prolific_pid",)
    readonly_fields = ("series", "token", "status", "is_test", "prolific_pid", "prolific_study_id",
                       "prolific_session_id", "consent_at", "consent_version", "started_at", "completed_at")

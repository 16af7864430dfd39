"""Admin for researchers: browse datasets and clips with previews, recognizers with their figures;
start, watch and cancel generation runs on the Celery workers."""
from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.management import CommandError
from django.db import transaction
from django.http import Http404, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from django.utils.safestring import mark_safe

from attacks.core.reporting.figures import stick_figure_strip
from attacks.services.generation import generation_config
from attacks.core.methods.losses import STRATEGIES
from attacks.management.commands._options import parse_key_values
from attacks.core.methods import METHODS
from attacks.core.errors import AttacksError
from attacks.tasks import prepare_queued_run
from attacks.core.reporting.rendering import tables_html
from attacks.models import AdversarialSample, Clip, Dataset, DatasetSplit, GenerationRun, Recognizer, RobustnessReport


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "format", "protocol", "skeleton_name", "fps", "num_classes", "clip_count", "created_at")
    list_filter = ("format", "protocol")
    search_fields = ("name", "source_path")
    readonly_fields = ("class_table", "created_at")
    exclude = ("skeleton",)

    @admin.display(description="skeleton")
    def skeleton_name(self, obj):
        return obj.skeleton.get("name")

    @admin.display(description="clips")
    def clip_count(self, obj):
        return obj.clips.count()

    @admin.display(description="clips per class")
    def class_table(self, obj):
        counts = obj.class_counts()
        top = max(counts.values(), default=1) or 1
        rows = format_html_join(
            "", '<tr><td>{}</td><td>{}</td><td>{}</td><td><div style="background:#417690;height:10px;width:{}px"></div></td></tr>',
            ((i, name, n, int(200 * n / top)) for i, (name, n) in enumerate(counts.items())))
        return format_html("<table><tr><th>label</th><th>class</th><th>clips</th><th></th></tr>{}</table>", rows)


@admin.register(Clip)
class ClipAdmin(admin.ModelAdmin):
    list_display = ("dataset", "index", "label_name", "source", "num_persons", "num_frames")
    list_filter = ("dataset", "num_persons")
    search_fields = ("source",)
    readonly_fields = ("preview", "dataset", "index", "label", "source", "frame_start", "frame_stop",
                       "person_indices", "num_persons", "num_frames", "num_joints", "meta")
    exclude = ("data",)

    def get_urls(self):
        return [path("<int:pk>/preview.png", self.admin_site.admin_view(self.preview_png),
                     name="attacks_clip_preview")] + super().get_urls()

    def preview_png(self, request, pk):
        clip = Clip.objects.select_related("dataset").filter(pk=pk).first()
        if clip is None:
            raise Http404("no such clip")
        return HttpResponse(stick_figure_strip(clip.motion(), clip.dataset.get_skeleton()), content_type="image/png")

    @admin.display(description="preview")
    def preview(self, obj):
        return format_html('<img src="{}" alt="stick figures of clip {}">', reverse("admin:attacks_clip_preview", args=[obj.pk]), obj.pk)


@admin.register(DatasetSplit)
class DatasetSplitAdmin(admin.ModelAdmin):
    list_display = ("dataset", "name", "method", "seed", "sizes")

    @admin.display(description="train / val / test")
    def sizes(self, obj):
        return f"{len(obj.train)} / {len(obj.val)} / {len(obj.test)}"


@admin.register(Recognizer)
class RecognizerAdmin(admin.ModelAdmin):
    list_display = ("name", "arch", "dataset", "status", "train_accuracy", "val_accuracy", "test_accuracy", "best_epoch")
    list_filter = ("arch", "dataset", "status")
    readonly_fields = ("figures",)

    @admin.display(description="learning curve and confusion matrix")
    def figures(self, obj):
        imgs = [p for p in (obj.learning_curve, obj.confusion_figure) if p]
        return format_html_join("", '<img src="{}" style="max-width:480px;margin-right:12px">',
                                ((reverse("data-file", args=[p]),) for p in imgs))


class StartGenerationRunForm(forms.ModelForm):
    """Start a run on the Celery workers: the same choices as `generate_samples --queue`."""

    top_n = forms.IntegerField(initial=3, min_value=1, help_text="ABN: success when the label leaves the top N")
    target = forms.CharField(required=False, help_text="SA: a label index, or empty for a seeded random target")
    iterations = forms.IntegerField(initial=300, min_value=1)
    limit = forms.IntegerField(required=False, min_value=1, help_text="Only the first N clips of the split")
    seed = forms.IntegerField(initial=0)
    options = forms.CharField(required=False, help_text="Method options as KEY=VALUE separated by spaces, "
                                                       "e.g. lr=0.001 or epsilon=0.01 step_size=0.001")
    shard_size = forms.IntegerField(initial=256, min_value=1, help_text="Clips per shard (whole batches)")
    batch_size = forms.IntegerField(initial=64, min_value=1)

    class Meta:
        model = GenerationRun
        fields = ["recognizer", "method", "strategy", "split"]
        widgets = {"method": forms.Select(choices=[(m, m) for m in METHODS]),
                   "strategy": forms.Select(choices=[(s, s) for s in STRATEGIES]),
                   "split": forms.Select(choices=[(s, s) for s in ("test", "val", "train")])}

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        target = data.get("target") or None
        if data["strategy"] == "sa" and target not in (None, "random"):
            try:
                target = int(target)
            except ValueError:
                raise forms.ValidationError({"target": "a label index, or empty"}) from None
        try:
            options = parse_key_values((data.get("options") or "").split(), "options")
            self.config = generation_config(
                data["method"], data["strategy"], top_n=data["top_n"], target=target,
                iterations=data["iterations"], split=data["split"], limit=data.get("limit"), seed=data["seed"],
                options=options)
        except (AttacksError, CommandError) as e:
            raise forms.ValidationError(str(e)) from None
        existing = GenerationRun.objects.filter(recognizer=data["recognizer"],
                                                config_hash=GenerationRun.hash_config(self.config)).first()
        if existing is not None:
            raise forms.ValidationError(f"This configuration is run {existing.pk} ({existing.status}); "
                                        "use the action 'queue again' to resume it.")
        return data


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = ("__str__", "recognizer", "method", "strategy", "split", "status", "progress", "shard_progress",
                    "skipped", "rate", "created_at")
    list_filter = ("method", "strategy", "status")
    actions = ["cancel_runs", "queue_again"]
    readonly_fields = ("recognizer", "method", "strategy", "split", "config", "config_hash", "status", "total",
                       "skipped", "progress", "shard_progress", "queue_options", "created_at", "finished_at")
    exclude = ("shards", "shards_finished")

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = StartGenerationRunForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request, obj=None):
        if obj is None:
            return list(StartGenerationRunForm.base_fields)
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            return
        config = form.config
        obj.config, obj.config_hash, obj.status = config, GenerationRun.hash_config(config), GenerationRun.Status.QUEUED
        obj.queue_options = {"shard_size": form.cleaned_data["shard_size"],
                             "batch_size": form.cleaned_data["batch_size"]}
        obj.save()
        self._enqueue(obj)
        self.message_user(request, f"Run {obj.pk} sent to the workers: they classify its clips, then attack it "
                                   "shard by shard. Reload this list to watch its progress.")

    @staticmethod
    def _enqueue(run):
        options = run.queue_options or {}
        args = (run.pk, options.get("shard_size", 256), options.get("batch_size", 64))
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        transaction.on_commit(lambda: prepare_queued_run.apply_async(args=args, queue=queue))

    @admin.action(description="Cancel the selected runs (workers stop after their current batch)")
    def cancel_runs(self, request, queryset):
        n = queryset.exclude(status=GenerationRun.Status.DONE).update(status=GenerationRun.Status.CANCELLED)
        self.message_user(request, f"{n} runs cancelled; stored samples are kept.")

    @admin.action(description="Queue again on the workers (resume what is not stored)")
    def queue_again(self, request, queryset):
        runs = list(queryset.exclude(status__in=[GenerationRun.Status.DONE, GenerationRun.Status.CANCELLED]))
        for run in runs:
            run.status = GenerationRun.Status.QUEUED
            run.save(update_fields=["status"])
            self._enqueue(run)
        self.message_user(request, f"{len(runs)} runs sent to the workers.")

    @admin.display(description="samples / attackable")
    def progress(self, obj):
        if not obj.total:
            return "—" if obj.status == GenerationRun.Status.QUEUED else "0"
        attackable = obj.total - obj.skipped
        done = obj.done
        return format_html('{} / {} <progress value="{}" max="{}"></progress>', done, attackable, done,
                           max(attackable, 1))

    @admin.display(description="shards")
    def shard_progress(self, obj):
        return f"{len(obj.shards_finished)} / {obj.shards}" if obj.shards else "in-process"

    @admin.display(description="success rate")
    def rate(self, obj):
        r = obj.success_rate()
        return "—" if r is None else f"{100 * r:.1f}%"


@admin.register(AdversarialSample)
class AdversarialSampleAdmin(admin.ModelAdmin):
    list_display = ("clip", "recognizer", "method", "strategy", "success", "iterations", "label", "label_after",
                    "mean_displacement")
    list_filter = ("method", "strategy", "success", "recognizer")
    readonly_fields = ("preview", "player")
    exclude = ("original", "adversarial")

    @admin.display(description="playback")
    def player(self, obj):
        url = reverse("study_web:sample_preview", args=[obj.pk])
        return format_html('<a href="{}" target="_blank">play original and adversarial side by side</a> '
                           '(<a href="{}?slow=3" target="_blank">3× slower</a>)', url, url)

    def get_urls(self):
        return [path("<int:pk>/preview.png", self.admin_site.admin_view(self.preview_png),
                     name="attacks_sample_preview")] + super().get_urls()

    def preview_png(self, request, pk):
        s = AdversarialSample.objects.select_related("clip__dataset").filter(pk=pk).first()
        if s is None:
            raise Http404("no such sample")
        png = stick_figure_strip(s.original_motion(), s.clip.dataset.get_skeleton(), overlay=s.adversarial_motion())
        return HttpResponse(png, content_type="image/png")

    @admin.display(description="original (blue) and adversarial (orange)")
    def preview(self, obj):
        return format_html('<img src="{}">', reverse("admin:attacks_sample_preview", args=[obj.pk]))


@admin.register(RobustnessReport)
class RobustnessReportAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at", "out_dir")
    readonly_fields = ("table_view", "figure_gallery")
    exclude = ("tables",)

    @admin.display(description="tables")
    def table_view(self, obj):
        return mark_safe(tables_html(obj.tables))  # tables_html escapes every cell

    @admin.display(description="figures")
    def figure_gallery(self, obj):
        return format_html_join("", '<img src="{}" style="max-width:520px;margin:6px">',
                                ((reverse("data-file", args=[p]),) for p in obj.figures))

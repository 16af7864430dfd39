"""Admin pages a researcher uses: class counts, clip previews, recognizer figures, sample previews, reports."""
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from attacks.models import AdversarialSample, Clip, Dataset, Recognizer, RobustnessReport
from tests.factories import make_samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_user("r", password="pw", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def test_admin_requires_login(client):
    make_samples(num_clips=2, methods=("smart",))
    clip = Clip.objects.first()
    for url in (reverse("admin:attacks_dataset_changelist"),
                reverse("admin:attacks_clip_preview", args=[clip.pk]),
                reverse("data-file", args=["anything.png"])):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_dataset_page_shows_class_counts(staff):
    ds = make_samples(num_clips=5, methods=("smart",))
    page = staff.get(reverse("admin:attacks_dataset_change", args=[ds.pk])).content.decode()
    counts = ds.class_counts()
    for name, n in counts.items():
        assert f"<td>{name}</td><td>{n}</td>" in page


def test_clip_and_sample_previews_are_png(staff):
    make_samples(num_clips=2, methods=("smart",))
    clip, sample = Clip.objects.first(), AdversarialSample.objects.first()
    for url in (reverse("admin:attacks_clip_preview", args=[clip.pk]),
                reverse("admin:attacks_sample_preview", args=[sample.pk])):
        response = staff.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert response.content[:8] == b"\x89PNG\r\n\x1a\n" and len(response.content) > 2000
    page = staff.get(reverse("admin:attacks_adversarialsample_change", args=[sample.pk])).content.decode()
    assert reverse("study_web:sample_preview", args=[sample.pk]) in page
    assert staff.get(reverse("admin:attacks_clip_preview", args=[999999])).status_code == 404


def test_recognizer_figures_are_served_from_data_dir(staff, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    make_samples(num_clips=2, methods=("smart",))
    rec = Recognizer.objects.first()
    (tmp_path / "recognizers" / rec.name).mkdir(parents=True)
    (tmp_path / "recognizers" / rec.name / "curve.png").write_bytes(b"\x89PNG fake")
    rec.learning_curve = f"recognizers/{rec.name}/curve.png"
    rec.save()
    page = staff.get(reverse("admin:attacks_recognizer_change", args=[rec.pk])).content.decode()
    url = reverse("data-file", args=[rec.learning_curve])
    assert url in page
    assert b"".join(staff.get(url).streaming_content) == b"\x89PNG fake"
    assert staff.get(reverse("data-file", args=["../../etc/passwd"])).status_code == 404


def test_report_tables_render_escaped(staff):
    report = RobustnessReport.objects.create(
        name="r", out_dir="/tmp", figures=[],
        tables={"table1": [{"recognizer": "<b>x</b>", "AB": 0.75}]})
    page = staff.get(reverse("admin:attacks_robustnessreport_change", args=[report.pk])).content.decode()
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert Dataset.objects.count() == 0


def test_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")

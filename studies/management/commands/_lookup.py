"""What the studies commands share: finding a study by id or slug, and a free slug for a
new study or series (one wording of each error)."""
from django.core.management.base import CommandError
from django.db.models import Q
from django.utils.text import slugify


def find_study(key: str):
    """The study with this slug (or numeric id), or a CommandError naming the key."""
    from studies.models import Study
    study = Study.objects.filter(Q(slug=key) | Q(pk=int(key)) if key.isdigit() else Q(slug=key)).first()
    if study is None:
        raise CommandError(f"no study {key!r}")
    return study


def free_slug(model, name: str, slug: str | None, what: str) -> str:
    """`slug`, or one made from `name`, that no `model` row uses yet."""
    slug = slug or slugify(name)[:100]
    if not slug:
        raise CommandError(f"the name {name!r} must contain letters or digits (or give --slug)")
    if model.objects.filter(slug=slug).exists():
        raise CommandError(f"a {what} with slug {slug!r} already exists")
    return slug

"""The Django-free core: datasets, recognizers, training, attack methods and reporting.

Nothing under this package imports Django (tests/test_core_is_django_free.py checks it),
so it runs in a notebook or a worker without settings; attacks/services/ is the shell that
reads and writes it through the ORM."""

"""Shared command-line option parsing: repeated KEY=VALUE options into typed dicts, and
list filters given as repeated flags or comma-separated values."""
import argparse
import json

from django.core.management.base import CommandError


def parse_key_values(pairs, flag):
    out = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def split_values(values, type=str, flag="option"):
    """A list filter's values as one flat list of `type`: accepts None (returned as is),
    one value, or an iterable of values, each possibly comma-separated ("smart,l2");
    empty items are dropped. Commands call it on what they read, so `call_command(...,
    method=["smart"])` and `method="smart,l2"` work as the command line does."""
    if values is None:
        return None
    if isinstance(values, (str, bytes, int)):
        values = [values]
    out = []
    for value in values:
        for item in (value.split(",") if isinstance(value, str) else [value]):
            item = item.strip() if isinstance(item, str) else item
            if item == "":
                continue
            try:
                out.append(type(item))
            except (TypeError, ValueError):
                raise CommandError(f"{flag}: invalid value {item!r}") from None
    return out


class _ListAction(argparse.Action):
    """Appends the (comma-separated) values of each use of the option to one list."""

    def __init__(self, option_strings, dest, item_type=str, **kwargs):
        self.item_type = item_type
        super().__init__(option_strings, dest, nargs=None, **kwargs)

    def __call__(self, parser, namespace, value, option_string=None):
        try:
            items = split_values(value, self.item_type, option_string or self.dest)
        except CommandError as e:
            raise argparse.ArgumentError(self, str(e).partition(": ")[2]) from None
        setattr(namespace, self.dest, list(getattr(namespace, self.dest, None) or []) + items)


def add_list_option(parser, *flags, type=str, default=(), help=None, **kwargs):
    """A list filter taking exactly one value per use: repeatable (`--method smart --method
    l2`) and comma-separated (`--method smart,l2`), or both. Unlike nargs="*" / "+" it
    never swallows a positional argument written after it. `default` is returned as a
    list when the option is absent (None stays None); read the value with `split_values`
    to accept call_command's keyword arguments too."""
    parser.add_argument(*flags, action=_ListAction, item_type=type,
                        default=list(default) if default is not None else None,
                        help=(f"{help}; repeat the flag or separate values by commas" if help else
                              "repeat the flag or separate values by commas"), **kwargs)


def recognizer_named(name):
    """The Recognizer row called `name` (with its dataset and split), or a CommandError."""
    from attacks.models import Recognizer

    try:
        return Recognizer.objects.select_related("dataset", "split").get(name=name)
    except Recognizer.DoesNotExist:
        raise CommandError(f"no recognizer named {name!r}") from None

"""The OpenAPI schema is what the participant API returns: real responses of every
endpoint, errors included, validated against the response the schema declares for
their status code.

The schema's objects are closed here (`additionalProperties: false` wherever the schema
leaves it open), so a body with a key its serializer does not declare fails, and a
body without a required key fails; every declared (path, method, status) must be
exercised, and every declared property of every response component seen at least once,
so an optional key no view sends any more fails too. The embedded motions, which the
next-trial view splices in as cached bytes instead of serializing them
(`serializers.EncodedMotionField`), are validated like any other field.
"""
import copy
import io
import json
import re

import jsonschema
import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from studies import assignment
from studies.models import Study, Trial
from tests.factories import make_samples, make_study

JSON = "application/json"


@pytest.fixture(scope="module")
def schema():
    """The schema as /api/schema/ serves it (rendered to JSON and read back)."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


def closed(node):
    """An OpenAPI 3.0 schema node as JSON Schema: `nullable` as a null alternative,
    component references into `$defs`, and every object with declared properties closed
    to undeclared ones."""
    if isinstance(node, list):
        return [closed(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: closed(v) for k, v in node.items() if k != "nullable"}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/$defs/")
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def template_of(path: str) -> str:
    """The schema's path for a request path (`/api/motions/{key}/`)."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", resolve(path).route)


class Checker:
    """Validates responses against the schema and records what they exercised."""

    def __init__(self, schema):
        self.schema = schema
        self.defs = {name: closed(c) for name, c in schema["components"]["schemas"].items()}
        self.exercised = set()  # (path, method, status)
        self.seen = set()  # (component, property)

    def operation(self, path, method):
        return self.schema["paths"][template_of(path)][method]

    def __call__(self, response, expect: int | None = None):
        request = response.request
        path, method = request["PATH_INFO"], request["REQUEST_METHOD"].lower()
        code = str(response.status_code)
        if expect is not None:
            assert response.status_code == expect, (path, method, response.status_code, response.content[:300])
        declared = self.operation(path, method)["responses"]
        assert code in declared, f"{method.upper()} {path}: status {code} is not declared ({sorted(declared)})"
        self.exercised.add((template_of(path), method, code))
        content = declared[code].get("content")
        if content is None:
            assert response.content == b"", f"{method.upper()} {path} {code}: a body where none is declared"
            return None
        assert response["Content-Type"].startswith(JSON)
        body = json.loads(response.content)
        declared_schema = content[JSON]["schema"]
        self.validate(body, declared_schema, f"{method.upper()} {path} {code}")
        self.observe(body, declared_schema)
        return body

    def validate(self, body, declared_schema, where=""):
        full = {"$defs": self.defs, **closed(declared_schema)}
        errors = sorted(jsonschema.Draft202012Validator(full).iter_errors(body), key=lambda e: list(e.path))
        assert not errors, f"{where}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])

    def observe(self, value, node, component=None):
        """Record which properties of which components `value` carried."""
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            return self.observe(value, self.schema["components"]["schemas"][name], name)
        for sub in node.get("allOf", []) + node.get("anyOf", []) + node.get("oneOf", []):
            self.observe(value, sub, component)
        if isinstance(value, dict):
            for key, v in value.items():
                if key in node.get("properties", {}):
                    self.seen.add((component, key))
                    self.observe(v, node["properties"][key])
        elif isinstance(value, list) and "items" in node:
            for item in value:
                self.observe(item, node["items"])

    def declared_operations(self):
        return {(path, method, code) for path, ops in self.schema["paths"].items() if path.startswith("/api/")
                and path != "/api/schema/" for method, op in ops.items() for code in op["responses"]}

    def response_components(self):
        """Every component a declared response reaches, with its properties."""
        found, todo = {}, [r["content"][JSON]["schema"] for ops in self.schema["paths"].values()
                            for op in ops.values() for r in op["responses"].values() if "content" in r]
        while todo:
            node = todo.pop()
            if isinstance(node, list):
                todo.extend(node)
            elif isinstance(node, dict):
                ref = node.get("$ref", "").rsplit("/", 1)[-1]
                if ref and ref not in found:
                    component = self.schema["components"]["schemas"][ref]
                    found[ref] = set(component.get("properties", {}))
                    todo.append(component)
                todo.extend(v for k, v in node.items() if k != "$ref")
        return found


@pytest.fixture
def check(schema):
    return Checker(schema)


def post(client, url, body=None, **extra):
    return client.post(url, body if body is not None else {}, content_type=JSON, **extra)


def start(client, slug, url="/api/studies/{}/participations/", **extra):
    return post(client, url.format(slug), {"consent": True, **extra})


def answer(client, token, trial, value=None):
    return post(client, f"/api/participations/{token}/answers/",
                {"trial": trial["trial"], "response_time_ms": 800, "playback": {},
                 "answer": value if value is not None else trial["options"][0]["value"]})


def answer_all(client, check, token):
    while not (n := check(client.get(f"/api/participations/{token}/next/"), 200))["done"]:
        check(answer(client, token, n["trial"]), 201)
    return n


def study_flow(client, check):
    """A study from its public page to the completion code, with every refusal on the way."""
    make_study("deceitfulness", trials_per_participant=2, practice_trials=1, completion_code="CODE01",
               questionnaire=[{"name": "mocap", "label": "Motion capture experience", "choices": ["none", "some"],
                               "required": False}])
    make_study("deceitfulness", slug="draft", status="draft", trials_per_participant=2)
    check(client.get("/api/studies/deceitfulness/"), 200)
    check(client.get("/api/studies/nope/"), 404)

    url = "/api/studies/{}/participations/"
    token = check(start(client, "deceitfulness", PROLIFIC_PID="pid-1", SESSION_ID="A"), 201)["token"]
    check(start(client, "deceitfulness", PROLIFIC_PID="pid-1", SESSION_ID="A"), 200)
    check(start(client, "deceitfulness", PROLIFIC_PID="pid-1", SESSION_ID="B"), 409)
    check(post(client, url.format("deceitfulness"), {"consent": False}), 400)
    check(client.post(url.format("deceitfulness"), "{consent: tru", content_type=JSON), 400)
    check(start(client, "deceitfulness", test=True), 403)  # staff only
    check(start(client, "draft"), 403)
    check(start(client, "nope"), 404)

    check(client.get(f"/api/participations/{token}/"), 200)
    check(client.get("/api/participations/not-a-token/"), 404)
    check(post(client, f"/api/participations/{token}/complete/"), 409)  # trials unanswered

    nxt = f"/api/participations/{token}/next/"
    practice = check(client.get(nxt), 200)["trial"]
    assert practice["is_practice"] and all("motion" in m for m in practice["motions"])
    lean = check(client.get(nxt, {"embed": "0"}), 200)["trial"]
    assert all("motion" not in m for m in lean["motions"])
    check(client.get("/api/participations/not-a-token/next/"), 404)

    check(answer(client, "not-a-token", practice), 404)
    check(answer(client, token, {"trial": "no-such-trial", "options": [{"value": "1"}]}), 404)
    check(answer(client, token, practice, "maybe"), 400)
    later = Trial.objects.get(participant__token=token, position=2).key
    check(answer(client, token, {"trial": later, "options": [{"value": "1"}]}), 403)  # not reached
    assert "feedback" in check(answer(client, token, practice, "1"), 201)
    check(answer(client, token, practice, "1"), 200)  # a repeat
    check(answer(client, token, practice, "2"), 409)  # changed

    done = answer_all(client, check, token)
    assert "complete_url" in done
    check(post(client, f"/api/participations/{token}/complete/"), 200)
    check(post(client, "/api/participations/not-a-token/complete/"), 404)

    key = practice["motions"][0]["key"]
    motion = check(client.get(f"/api/motions/{key}/"), 200)
    assert motion == practice["motions"][0]["motion"]  # the spliced bytes are the served motion
    etag = client.get(f"/api/motions/{key}/")["ETag"]
    check(client.get(f"/api/motions/{key}/", HTTP_IF_NONE_MATCH=etag), 304)
    check(client.get("/api/motions/unknown-key/"), 404)

    withdrawn = check(start(client, "deceitfulness", PROLIFIC_PID="pid-2"), 201)["token"]
    check(client.delete(f"/api/participations/{withdrawn}/"), 204)
    check(client.delete("/api/participations/not-a-token/"), 404)

    closed_token = check(start(client, "deceitfulness", PROLIFIC_PID="pid-3"), 201)["token"]
    assignment.close_study(Study.objects.get(slug="deceitfulness"), now=True)
    check(client.get(f"/api/participations/{closed_token}/next/"), 403)


def series_flow(client, check):
    """A series through to its code, a study taken outside it, withdrawal and refusals."""
    for slug, kind in (("part-a", "deceitfulness"), ("part-b", "indistinguishability")):
        make_study(kind, slug=slug, trials_per_participant=2, practice_trials=0)
    call_command("create_series", "Pair", "--studies", "part-a,part-b", "--config",
                 "{}", stdout=io.StringIO())
    url = "/api/series/{}/participations/"
    check(client.get("/api/series/pair/"), 200)
    check(client.get("/api/series/nope/"), 404)

    state = check(start(client, "pair", url=url, PROLIFIC_PID="pid-s", SESSION_ID="A"), 201)
    check(start(client, "pair", url=url, PROLIFIC_PID="pid-s", SESSION_ID="A"), 200)
    check(start(client, "pair", url=url, PROLIFIC_PID="pid-s", SESSION_ID="B"), 409)
    check(post(client, url.format("pair"), {"consent": False}), 400)
    check(start(client, "pair", url=url, test=True), 403)
    check(start(client, "nope", url=url), 404)
    check(client.get(f"/api/series-participations/{state['token']}/"), 200)
    check(client.get("/api/series-participations/not-a-token/"), 404)

    token = state["next"]["token"]
    for part in (1, 2):
        answer_all(client, check, token)
        done = check(post(client, f"/api/participations/{token}/complete/"), 200)
        assert "series" in done
        token = done["series"].get("next", {}).get("token")
    assert done["completion_code"] and "next" not in done["series"]
    final = check(client.get(f"/api/series-participations/{state['token']}/"), 200)
    assert "completion_code" in final and "next" not in final

    # part B taken on its own first: the series cannot go on to it
    check(start(client, "part-b", PROLIFIC_PID="pid-o", SESSION_ID="o"), 201)
    other = check(start(client, "pair", url=url, PROLIFIC_PID="pid-o", SESSION_ID="o"), 201)
    answer_all(client, check, other["next"]["token"])
    refused = check(post(client, f"/api/participations/{other['next']['token']}/complete/"), 409)
    assert "remaining" not in refused
    check(client.get(f"/api/series-participations/{other['token']}/"), 409)

    leaving = check(start(client, "pair", url=url, PROLIFIC_PID="pid-w"), 201)
    check(client.delete(f"/api/series-participations/{leaving['token']}/"), 204)
    check(client.delete("/api/series-participations/not-a-token/"), 404)


def rate_limited(client, check, settings):
    """Every operation once more with the address limit exhausted: a 429 each."""
    settings.PARTICIPANT_THROTTLE_RATES = {"participant_ip": "0/min", "participant_token": ""}
    cache.clear()
    try:
        for path, method in sorted({(path, method) for path, method, _ in check.declared_operations()}):
            url = path.format(slug="part-a", token="some-token", key="some-key")  # refused before any look-up
            body = {"data": {}, "content_type": JSON} if method == "post" else {}
            check(getattr(client, method)(url, **body), 429)
    finally:
        settings.PARTICIPANT_THROTTLE_RATES = {"participant_ip": "", "participant_token": ""}
        cache.clear()


@pytest.mark.django_db
def test_every_response_matches_the_schema_for_its_status(client, check, settings):
    make_samples(num_clips=8)
    study_flow(client, check)
    series_flow(client, check)
    rate_limited(client, check, settings)
    assert sorted(check.declared_operations() - check.exercised) == [], "declared but never exercised"
    unseen = sorted((name, prop) for name, props in check.response_components().items() for prop in props
                    if (name, prop) not in check.seen)
    assert unseen == [], "declared properties no response carried"


@pytest.mark.django_db
def test_staff_test_participation_matches_the_schema(client, check):
    make_samples(num_clips=6)
    make_study("naturalness", trials_per_participant=2, practice_trials=0)
    user = get_user_model().objects.create_user("researcher", password="pw", is_staff=True)
    client.force_login(user)
    state = check(start(client, "naturalness", test=True), 201)
    assert state["is_test"] is True
    check(client.get(f"/api/participations/{state['token']}/next/"), 200)


def test_the_check_fails_on_an_undeclared_key_a_missing_one_and_a_wrong_type(schema):
    """What the schema test relies on: the closed schema rejects drift either way."""
    check = Checker(schema)
    answer_schema = schema["paths"]["/api/participations/{token}/answers/"]["post"]["responses"]["201"]
    declared = answer_schema["content"][JSON]["schema"]
    good = {"trial": "t", "answer": "1", "duplicate": False, "remaining": 3,
            "feedback": {"correct": None, "expected": None}}
    check.validate(good, declared)
    for bad in ({**good, "extra": 1}, {k: v for k, v in good.items() if k != "remaining"},
                {**good, "remaining": "3"}, {**good, "feedback": {"correct": True, "expected": "1", "why": "x"}}):
        with pytest.raises(AssertionError):
            check.validate(bad, declared)
    trial_schema = schema["paths"]["/api/participations/{token}/next/"]["get"]["responses"]["200"]
    motion = {"format": "int16-tdelta-deflate-base64", "shape": [1, 2, 3, 3], "fps": 30.0,
              "offset": [0.0, 0.0, 0.0], "scale": [1.0, 1.0, 1.0], "data": ""}
    body = {"done": False, "trial": {"trial": "t", "position": 0, "total": 1, "is_practice": False, "prompt": "p",
                                     "options": [{"value": "1", "text": "one"}], "options_after_playback": False,
                                     "motions": [{"side": "left", "key": "k", "url": "/u/", "motion": motion}],
                                     "skeleton": {"num_joints": 3, "bones": [[0, 1]], "up": "y"},
                                     "playback": {"fps": [30.0], "frames": [2], "effective_fps": [30.0],
                                                  "clip_seconds": 0.03, "showings": 1, "pause_seconds": 0.5,
                                                  "slow_motion": 1.0, "total_seconds": 0.03, "seconds": 6.0,
                                                  "repeats": 1}}}
    check.validate(body, trial_schema["content"][JSON]["schema"])
    spliced = copy.deepcopy(body)
    spliced["trial"]["motions"][0]["motion"]["checksum"] = "x"  # the motion encoding grew a key
    with pytest.raises(AssertionError):
        check.validate(spliced, trial_schema["content"][JSON]["schema"])

"""Who may write to the workspace member: the token check and the hub gate's decision (pure)."""

from __future__ import annotations

import re
import stat

import pytest

from eolab.analysis import publish
from eolab.stack import workspace as _workspace
from eolab.stack.workspace import needs_token, token_problem, write_allowed


@pytest.mark.parametrize("method, path", [
    ("POST", "/collections"), ("PUT", "/collections/results-a"), ("DELETE", "/collections/results-a"),
    ("POST", "/collections/results-a/items"), ("PUT", "/collections/results-a/items/x"),
    ("PATCH", "/collections/results-a/items/x"), ("DELETE", "/collections/results-a/items/x"),
    ("POST", "/collections/results-a/bulk_items"), ("post", "/search/extra"), ("POST", "/"),
])
def test_writes_need_the_token(method, path):
    assert needs_token(method, path)


@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/collections"), ("HEAD", "/collections/results-a/items"), ("OPTIONS", "/collections"),
    ("POST", "/search"), ("POST", "/search/"), ("post", "/search"), ("GET", "/search"),
])
def test_reads_and_search_need_none(method, path):
    assert not needs_token(method, path)


def test_the_token_check_names_the_problem():
    token = "s3cret"
    assert token_problem(f"Bearer {token}", token) is None
    assert token_problem(f"bearer  {token} ", token) is None
    status, message = token_problem(None, token)
    assert status == 401 and "Bearer <workspace token>" in message
    assert token_problem(f"token {token}", token)[0] == 401
    assert token_problem("Bearer", token)[0] == 401
    assert token_problem("Bearer nope", token) == (403, "wrong workspace token")
    assert token_problem(f"Bearer {token}x", token)[0] == 403


def test_the_token_is_created_private_and_kept(tmp_path):
    token, created = _workspace.ensure_token(tmp_path)
    assert created and len(token) == 64
    path = _workspace.token_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _workspace.ensure_token(tmp_path) == (token, False)
    assert _workspace.read_token(tmp_path) == token
    assert _workspace.read_token(tmp_path / "elsewhere") is None


def test_the_gate_and_the_kernels_agree_on_the_collection_name(monkeypatch):
    for name in ("alice", "eolabt-alice", "Alice Smith", "bob@example.org"):
        monkeypatch.setenv("JUPYTERHUB_USER", name)
        assert _workspace.user_collection(name) == publish.results_collection_id()


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/collections", {"id": "results-alice", "type": "Collection"}),
    ("POST", "/collections", b'{"id": "results-alice"}'),
    ("PUT", "/collections/results-alice", {"id": "results-alice"}),
    ("DELETE", "/collections/results-alice", None),
    ("POST", "/collections/results-alice/items", {"id": "x", "collection": "results-alice"}),
    ("POST", "/collections/results-alice/bulk_items", {"items": {}, "method": "upsert"}),
    ("PUT", "/collections/results-alice/items/x", {"id": "x"}),
    ("DELETE", "/collections/results-alice/items/x", None),
    ("DELETE", "/collections/results-%61lice/items/x", None),
    ("GET", "/collections/results-bob/items", None),
    ("POST", "/search", {"collections": ["results-bob"]}),
])
def test_the_gate_passes_reads_and_writes_into_the_users_collection(method, path, body):
    allowed, reason = write_allowed("alice", method, path, body)
    assert allowed, reason


@pytest.mark.parametrize("method, path, body, why", [
    ("POST", "/collections", {"id": "results-bob"}, "only create your own collection 'results-alice'"),
    ("POST", "/collections", b"not json", "not None"),
    ("POST", "/collections", None, "not None"),
    ("PUT", "/collections", {"id": "results-alice"}, "not a write the gate passes on"),
    ("PUT", "/collections/results-bob", {"id": "results-bob"}, "not 'results-bob'"),
    ("PUT", "/collections/results-alice", {"id": "results-bob"}, "body's id 'results-bob'"),
    ("DELETE", "/collections/results-bob", None, "own collection"),
    ("POST", "/collections/results-bob/items", {"id": "x"}, "own collection"),
    ("POST", "/collections/results-bob/bulk_items", {"items": {}}, "own collection"),
    ("DELETE", "/collections/results-bob/items/x", None, "own collection"),
    ("DELETE", "/collections/results-alice2/items/x", None, "own collection"),
    ("DELETE", "/collections/results-alice/../results-bob/items/x", None, "not a workspace route"),
    ("DELETE", "/collections/results-alice/items/%2e%2e", None, "not a workspace route"),
    ("DELETE", "/collections/results-alice%2F..%2Fresults-bob/items/x", None, "own collection"),
    ("POST", "/collections/results-alice", {"id": "results-alice"}, "not a workspace route"),
    ("POST", "/collections/results-alice/queryables", {}, "not a write the gate passes on"),
    ("POST", "/collections/results-alice/items/x/extra", {}, "not a write the gate passes on"),
    ("POST", "/", {}, "not a workspace route"),
    ("POST", "/search/other", {}, "not a write the gate passes on"),
    # a JSON Patch list has no id to check: it renamed another user's collection, or broke one's
    # own so that every collection listing failed (HTTP 500)
    ("PATCH", "/collections/results-alice", [{"op": "replace", "path": "/id", "value": "results-bob"}], "PATCH"),
    ("PATCH", "/collections/results-alice", {"id": "results-alice"}, "PATCH"),
    ("PATCH", "/collections/results-alice/items/x", [{"op": "replace", "path": "/links", "value": []}], "PATCH"),
    ("POST", "/collections", b'{"a":' * 5000, "not None"),  # too deep to parse: refused, not a crash
])
def test_the_gate_refuses_every_other_write(method, path, body, why):
    allowed, reason = write_allowed("alice", method, path, body)
    assert not allowed and why in reason


def test_the_gate_uses_the_hub_name_as_the_kernel_does():
    assert write_allowed("eolabt-alice", "POST", "/collections/results-eolabt-alice/bulk_items")[0]
    assert not write_allowed("eolabt-bob", "POST", "/collections/results-eolabt-alice/bulk_items")[0]
    own = _workspace.user_collection("Alice Smith")
    assert write_allowed("Alice Smith", "POST", "/collections", {"id": own})[0]
    assert not write_allowed("alice-smith", "POST", "/collections", {"id": own})[0]


def test_every_user_name_has_its_own_collection():
    """Names that make one slug (``a.b``, ``a_b``, ``a-b``, ``A.B``; ``jörg``/``jürg``; names of no
    Latin letter) shared one collection, whose items each could overwrite and delete."""
    names = ["a-b", "a.b", "a_b", "A.B", "a b", "jörg", "jürg", "", "山田", "田中", "result", "results",
             "bob@example.org", "bob-example-org", "x-0123456789abcdef", "X-0123456789abcdef"]
    collections = [_workspace.user_collection(n) for n in names]
    assert len(set(collections)) == len(names), collections
    assert _workspace.user_collection("alice") == "results-alice"  # plain names keep their collection
    assert _workspace.user_collection("eolabt-alice") == "results-eolabt-alice"
    for name, collection in zip(names, collections):
        assert re.fullmatch(r"results-[a-z0-9-]+", collection)
        assert write_allowed(name, "POST", f"/collections/{collection}/bulk_items")[0]
        others = [c for c in collections if c != collection]
        assert not any(write_allowed(name, "POST", f"/collections/{c}/bulk_items")[0] for c in others)


def test_publish_sends_the_token_it_may_read(tmp_path, monkeypatch):
    from eolab.config import DEFAULT_CONFIG, load_config

    for name in ("EOLAB_WORKSPACE_URL", "EOLAB_WORKSPACE_TOKEN", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    config = load_config(DEFAULT_CONFIG, port_offset=0, run_dir=str(tmp_path))
    assert publish.writable_provider(config=config).authorization is None
    token, _ = _workspace.ensure_token(tmp_path)
    provider = publish.writable_provider(config=config)
    assert provider.authorization == f"Bearer {token}" and token not in repr(provider)
    monkeypatch.setenv("EOLAB_WORKSPACE_TOKEN", "from-env")
    assert publish.writable_provider(config=config).authorization == "Bearer from-env"
    # Never to a URL merely given.
    assert publish.writable_provider("http://127.0.0.1:9/").authorization is None
    # A hub kernel: the gate takes the kernel's hub token.
    monkeypatch.setenv("EOLAB_WORKSPACE_URL", "http://127.0.0.1:9/services/catalog/members/workspace")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hubtoken")
    assert publish.writable_provider().authorization == "token hubtoken"
    assert publish.writable_provider("http://127.0.0.1:9/services/catalog/members/workspace/").authorization \
        == "token hubtoken"


def _item(**changes):
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "r1", "collection": "results-alice",
            "geometry": {"type": "Point", "coordinates": [20.6, 47.7]}, "bbox": [20.6, 47.7, 20.6, 47.7],
            "properties": {"datetime": "2026-05-01T00:00:00Z"}, "links": [], "assets": {}}
    item.update(changes)
    return item


def _bulk(*items):
    import json

    return json.dumps({"items": {i["id"]: i for i in items}, "method": "upsert"}).encode()


@pytest.mark.parametrize("item, words", [
    (_item(links=[{"rel": "license"}]), "link 0 needs 'rel' and 'href'"),
    (_item(assets={"a": {"href": 5}}), "asset 'a' has no href"),
    (_item(properties={"datetime": "2026-05-01T00:00:00Z", "title": "a\x00b"}), "control character"),
    (_item(properties={"datetime": "9999-12-31T00:00:00Z"}), "in the future"),
    (_item(properties={"datetime": None, "start_datetime": "9999-01-01T00:00:00Z",
                       "end_datetime": "9999-12-31T00:00:00Z"}), "start_datetime 9999-01-01T00:00:00Z is in the future"),
    (_item(properties={"datetime": "2026-05-01T00:00:00Z", "title": "a\u202eb"}), "control character"),
    (_item(properties={"datetime": "2026-05-01T00:00:00Z", "junk": "x" * 140_000}), "kB as JSON (at most 128 kB)"),
    (_item(geometry={"type": "Point", "coordinates": "x"}), "geometry"),
])
def test_the_workspace_refuses_items_that_would_break_searches(item, words):
    status, message = _workspace.write_problem("POST", "/collections/results-alice/bulk_items", _bulk(item))
    assert status == 400 and words in message and "'r1'" in message
    status, message = _workspace.write_problem("PUT", "/collections/results-alice/items/r1",
                                               __import__("json").dumps(item).encode())
    assert status == 400 and words in message


def test_the_workspace_passes_good_writes_and_refuses_patch_and_junk():
    assert _workspace.write_problem("POST", "/collections/results-alice/bulk_items", _bulk(_item())) is None
    season = _item(properties={"datetime": None, "start_datetime": "2026-03-01T00:00:00Z",
                               "end_datetime": "2099-12-31T00:00:00Z"})  # a period may end ahead (a season)
    assert _workspace.write_problem("POST", "/collections/results-alice/bulk_items", _bulk(season)) is None
    assert _workspace.write_problem("DELETE", "/collections/results-alice/items/r1", b"") is None
    collection = publish.results_collection("results-alice", "alice")
    import json

    assert _workspace.write_problem("POST", "/collections", json.dumps(collection).encode()) is None
    broken = dict(collection, links=[{"rel": "x"}])
    status, message = _workspace.write_problem("PUT", "/collections/results-alice", json.dumps(broken).encode())
    assert status == 400 and "links.0.href" in message
    assert _workspace.write_problem("PATCH", "/collections/results-alice", b"[]")[0] == 405
    huge = dict(collection, description="x" * (3 * 2 ** 20))
    status, message = _workspace.write_problem("PUT", "/collections/results-alice", json.dumps(huge).encode())
    assert status == 400 and "more than 2 MB" in message
    assert _workspace.write_problem("POST", "/collections/results-alice/bulk_items", b"{")[0] == 400
    assert _workspace.write_problem("POST", "/collections/results-alice/bulk_items", b'{"a":' * 5000)[0] == 400
    assert _workspace.write_problem("POST", "/collections/results-alice/bulk_items", b"[]")[0] == 400

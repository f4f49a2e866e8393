"""The HTTP API on tiny bundles: known rankings, cold-start ingestion, feedback, errors, limits."""
from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from serving_bundles import BLUE, RED, block, poster, shared_bundle, user_block
from prismrec.serving.app import ServingSettings, create_app
from prismrec.serving.bundle import load_bundle
from prismrec.serving.engine import ServingEngine


def client_for(bundle_path, state_dir, **settings) -> TestClient:
    engine = ServingEngine(load_bundle(bundle_path), state_dir=state_dir)
    return TestClient(create_app(engine, ServingSettings(**settings)))


@pytest.fixture(scope="module")
def bpr_path(tmp_path_factory):
    return shared_bundle("bpr", tmp_path_factory)


@pytest.fixture(scope="module")
def vbpr_path(tmp_path_factory):
    return shared_bundle("vbpr", tmp_path_factory)


@pytest.fixture
def bpr(bpr_path, tmp_path):
    return client_for(bpr_path, tmp_path / "state", api_key=None)


def png_bytes(colour=BLUE, size=(48, 72)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_recommendations_are_the_users_own_block_and_never_seen_items(bpr):
    history = {item["item_id"] for item in bpr.get("/users/u3").json()["history"]}
    body = bpr.get("/users/u3/recommendations", params={"k": 5}).json()
    assert body["user_id"] == "u3" and body["exclude_seen"] is True and len(body["items"]) == 5
    assert [item["rank"] for item in body["items"]] == [1, 2, 3, 4, 5]
    assert all(block(item["item_id"]) == 0 for item in body["items"])
    assert not history & {item["item_id"] for item in body["items"]}
    assert body["items"][0]["title"] and body["items"][0]["score"] >= body["items"][-1]["score"]
    with_seen = bpr.get("/users/u3/recommendations", params={"k": 30, "exclude_seen": "false"}).json()
    assert history <= {item["item_id"] for item in with_seen["items"]}


def test_errors_are_json_a_person_can_act_on(bpr):
    unknown = bpr.get("/users/nobody/recommendations")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_user"
    assert "unknown user 'nobody'" in unknown.json()["detail"]
    too_many = bpr.get("/users/u3/recommendations", params={"k": 5000})
    assert too_many.status_code == 422 and "k: Input should be less than or equal to 1000" in too_many.json()["detail"]
    assert bpr.get("/users/u3/recommendations", params={"k": 0}).status_code == 422
    missing = bpr.get("/items/i999")
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_item"
    traversal = bpr.get("/items/..%2F..%2Fetc%2Fpasswd/image")
    assert traversal.status_code == 404 and traversal.headers["content-type"] == "application/json"


def test_items_similar_and_search(bpr):
    item = bpr.get("/items/i2").json()
    assert item == {"item_id": "i2", "title": "Galaxy Patrol", "fields": {"title": "Galaxy Patrol", "genres": "Sci-Fi"},
                    "has_image": False, "image_url": None}
    similar = bpr.get("/items/i2/similar", params={"k": 5}).json()["items"]
    assert len(similar) == 5 and "i2" not in {s["item_id"] for s in similar}
    assert all(block(s["item_id"]) == 0 for s in similar)
    found = bpr.get("/items", params={"q": "wed"}).json()["items"]
    assert [f["title"] for f in found] == ["Wedding Bells", "June Wedding"]  # prefix matches first


def test_feedback_is_excluded_at_once_and_folded_into_a_new_users_vector(bpr):
    for item in ("i1", "i4", "i7"):
        ack = bpr.post("/interactions", json={"user_id": "newcomer", "item_id": item})
        assert ack.status_code == 201 and ack.json()["new_user"] and ack.json()["folded_in"]
    recs = bpr.get("/users/newcomer/recommendations", params={"k": 5}).json()["items"]
    assert not {"i1", "i4", "i7"} & {r["item_id"] for r in recs}
    assert all(block(r["item_id"]) == 0 for r in recs[:3])  # three space films -> space films
    top = bpr.get("/users/u25/recommendations", params={"k": 1}).json()["items"][0]["item_id"]
    bpr.post("/interactions", json={"user_id": "u25", "item_id": top})
    assert top not in {r["item_id"] for r in bpr.get("/users/u25/recommendations").json()["items"]}
    bad = bpr.post("/interactions", json={"user_id": "u1", "item_id": "nope"})
    assert bad.status_code == 404 and "unknown item 'nope'" in bad.json()["detail"]
    assert bpr.post("/interactions", json={"user_id": "../x", "item_id": "i1"}).status_code == 422


def test_id_only_model_says_it_cannot_take_new_items(bpr):
    response = bpr.post("/items", data={"item_id": "new", "title": "Rocket"})
    assert response.status_code == 409 and response.json()["error"] == "cold_start_unsupported"
    assert "BPR" in response.json()["detail"] and "vbpr" in response.json()["detail"]
    assert bpr.get("/items/new").status_code == 404


def test_a_new_item_is_encoded_and_reaches_the_users_of_its_theme(vbpr_path, tmp_path):
    client = client_for(vbpr_path, tmp_path / "state")
    assert client.get("/health").json()["accepts_new_items"] is True
    response = client.post("/items", data={"item_id": "apollo", "title": "Rocket flight to the Moon"},
                           files={"image": ("poster.png", png_bytes(BLUE), "image/png")})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["item"]["has_image"] and body["item"]["image_url"] == "/items/apollo/image"
    assert body["missing_content"] == []
    reached = [u["user_id"] for u in body["audience"]["users"]]
    assert reached and sum(user_block(u) == 0 for u in reached) >= 0.8 * len(reached)
    first = reached[0]
    assert "apollo" in {r["item_id"] for r in client.get(f"/users/{first}/recommendations").json()["items"]}
    assert client.get("/items/apollo/image").content == png_bytes(BLUE)
    romance = client.post("/items", data={"item_id": "vows", "title": "A wedding and a kiss",
                                          "fields": '{"genres": "Romance"}'},
                          files={"image": ("p.png", png_bytes(RED), "image/png")}).json()
    reached = [u["user_id"] for u in romance["audience"]["users"]]
    assert reached and sum(user_block(u) == 1 for u in reached) >= 0.8 * len(reached)
    duplicate = client.post("/items", data={"item_id": "apollo", "title": "again"})
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["detail"]
    # a restarted server re-reads the ingested items from SQLite and their features from the store
    again = client_for(vbpr_path, tmp_path / "state")
    assert again.get("/items/apollo").json()["title"] == "Rocket flight to the Moon"
    assert again.get("/items/vows/audience").json()["count"] == romance["audience"]["count"]


def test_cached_lists_are_dropped_by_that_users_feedback_and_by_any_new_item(vbpr_path, tmp_path):
    client = client_for(vbpr_path, tmp_path / "state")
    engine, cache = client.app.state.engine, client.app.state.response_cache
    before = {f"u{u}": client.get(f"/users/u{u}/recommendations").json() for u in range(40)}
    assert (cache.hits, cache.misses) == (0, 40)
    assert client.get("/users/u3/recommendations").json() == before["u3"] and cache.hits == 1
    top = before["u3"]["items"][0]["item_id"]
    client.post("/interactions", json={"user_id": "u3", "item_id": top})
    after = client.get("/users/u3/recommendations").json()["items"]
    assert top not in {r["item_id"] for r in after} and after == engine.recommend("u3", 10)
    assert client.get("/users/u30/recommendations").json() == before["u30"] and cache.hits == 2  # others kept
    added = client.post("/items", data={"item_id": "apollo", "title": "Rocket flight to the Moon"},
                        files={"image": ("poster.png", png_bytes(BLUE), "image/png")}).json()
    reached = [u["user_id"] for u in added["audience"]["users"] if u["user_id"] != "u3"]
    assert reached and not any("apollo" in {r["item_id"] for r in before[u]["items"]} for u in reached)
    for user in reached:  # every list it now belongs to is recomputed, none served stale
        assert "apollo" in {r["item_id"] for r in client.get(f"/users/{user}/recommendations").json()["items"]}
    assert cache.hits == 2


def test_plain_requests_answered_before_routing_equal_the_routes_answers(bpr):
    fast = "/users/u3/recommendations"
    for query in ("", "k=5", "k=5&exclude_seen=false", "exclude_seen=yes&k=7", "k=010", "exclude_seen=0"):
        # an unknown extra parameter makes the request non-plain: FastAPI's route answers it
        answer, routed = bpr.get(f"{fast}?{query}"), bpr.get(f"{fast}?{query}&via=route")
        assert answer.status_code == 200 and answer.content == routed.content, query
        assert answer.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert bpr.get(f"{fast}?k=5").json()["items"] == bpr.app.state.engine.recommend("u3", 5)
    assert bpr.get(f"{fast}?exclude_seen=false&k=30").json()["exclude_seen"] is False
    for query, status in (("k=0", 422), ("k=1001", 422), ("k=5&k=6", 200), ("exclude_seen=maybe", 422)):
        assert bpr.get(f"{fast}?{query}").status_code == status, query  # left to the route, with its errors
    unknown = bpr.get("/users/nobody/recommendations?k=5")
    assert unknown.status_code == 404 and "unknown user 'nobody'" in unknown.json()["detail"]
    metrics = bpr.get("/metrics").text  # answered before routing or not, each is counted under the route
    for status, count in ((200, 15), (422, 3), (404, 1)):
        assert f'route="/users/{{user_id}}/recommendations",status="{status}"}} {count}\n' in metrics


def test_uploads_are_checked(vbpr_path, tmp_path):
    client = client_for(vbpr_path, tmp_path / "state", max_image_bytes=20_000, max_pixels=100_000)

    def post(name, payload):
        return client.post("/items", data={"item_id": name, "title": "x"}, files={"image": ("f.png", payload)})

    not_image = post("a", b"#!/bin/sh\nrm -rf /\n" * 10)
    assert not_image.status_code == 400 and "not a JPEG, PNG, GIF or WebP" in not_image.json()["detail"]
    truncated = post("b", png_bytes()[:60])
    assert truncated.status_code == 400 and "could not be decoded" in truncated.json()["detail"]
    bomb = post("c", png_bytes(size=(1000, 1000)))  # a few KB of PNG, 1e6 pixels
    assert bomb.status_code == 400 and "limit is 100000 pixels" in bomb.json()["detail"]
    big = post("d", b"\x89PNG\r\n\x1a\n" + bytes(30_000))
    assert big.status_code == 400 and "limit is 20000 bytes" in big.json()["detail"]
    assert client.get("/items/a").status_code == 404  # nothing half-stored


def test_request_body_limit_and_api_key(bpr_path, tmp_path):
    client = client_for(bpr_path, tmp_path / "state", api_key="s3cret", max_body_bytes=1000)
    event = {"user_id": "u1", "item_id": "i2"}
    assert client.post("/interactions", json=event).status_code == 401
    assert client.post("/interactions", json=event, headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.post("/interactions", json=event, headers={"X-API-Key": "s3cret"}).status_code == 201
    assert client.get("/users/u1/recommendations").status_code == 200  # reads need no key
    huge = client.post("/interactions", content=b"{" + b" " * 5000 + b"}", headers={
        "X-API-Key": "s3cret", "content-type": "application/json"})
    assert huge.status_code == 413 and huge.json()["error"] == "body_too_large"


def test_health_metrics_docs_and_page(bpr):
    assert bpr.get("/health").json() == {"status": "ok", "model": "BPR", "n_users": 40, "n_items": 30,
                                         "index": "exact", "accepts_new_items": False, "features": []}
    for _ in range(3):
        bpr.get("/users/u1/recommendations")
    bpr.get("/users/ghost/recommendations")
    text = bpr.get("/metrics").text
    assert 'prismrec_requests_total{method="GET",route="/users/{user_id}/recommendations",status="200"} 3' in text
    assert 'route="/users/{user_id}/recommendations",status="404"} 1' in text
    assert 'prismrec_request_seconds_bucket{method="GET",route="/users/{user_id}/recommendations",le="+Inf"} 4' in text
    assert "/users/{user_id}/recommendations" in bpr.get("/openapi.json").json()["paths"]
    assert "<title>PrismRec</title>" in bpr.get("/").text


HOSTILE = ["..", "../../etc/passwd", "%2e%2e%2f", "x" * 300, "ü" * 10, "-1", "0", "1e309", "", " ", "null",
           "<script>", "'; DROP TABLE items; --"]


def test_every_read_route_answers_hostile_input_with_json_never_a_500(bpr):
    """A small sweep over the OpenAPI spec: each GET route, each parameter, hostile values."""
    spec = bpr.get("/openapi.json").json()
    checked = 0
    for path, operations in spec["paths"].items():
        operation = operations.get("get")
        if operation is None:
            continue
        parameters = operation.get("parameters", [])
        for parameter in parameters:
            for value in HOSTILE:
                url = path
                query = {}
                for other in parameters:
                    chosen = value if other is parameter else {"user_id": "u1", "item_id": "i1", "q": "a"}.get(
                        other["name"], "3")
                    if other["in"] == "path":
                        url = url.replace("{" + other["name"] + "}", chosen.replace("/", "%2F") or "%20")
                    else:
                        query[other["name"]] = chosen
                response = bpr.get(url, params=query)
                checked += 1
                assert response.status_code < 500, (url, query, response.text)
                if response.status_code >= 400:
                    body = response.json()
                    assert set(body) == {"error", "detail"} and body["detail"], (url, query, body)
    assert checked > 100


def test_body_limit_also_stops_a_streamed_body_without_content_length():
    import asyncio

    from prismrec.serving.middleware import BodyLimit

    async def echo_app(scope, receive, send):  # reads the whole body, then answers 200
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def run(chunks):
        messages, sent = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                          for i, c in enumerate(chunks)], []

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message)

        await BodyLimit(echo_app, max_bytes=10)({"type": "http", "headers": []}, receive, send)
        return sent[0]["status"], sent[-1]["body"]

    assert asyncio.run(run([b"12345", b"12345"])) == (200, b"ok")
    status, body = asyncio.run(run([b"123456", b"123456"]))
    assert status == 413 and b"over the limit of 10 bytes" in body


@pytest.mark.parametrize("body", [
    {}, {"user_id": "u1"}, {"user_id": 5, "item_id": "i1"}, {"user_id": "u1", "item_id": "i1", "event": "hate"},
    {"user_id": "u1", "item_id": "i1", "timestamp": "yesterday"}, {"user_id": "x" * 500, "item_id": "i1"},
    [1, 2], "text", {"user_id": None, "item_id": "i1"}])
def test_bad_interaction_bodies_get_a_422_naming_the_field(bpr, body):
    response = bpr.post("/interactions", json=body)
    assert response.status_code == 422 and response.json()["error"] == "invalid_request"
    assert response.json()["detail"]


def test_bad_item_forms_get_clear_errors(vbpr_path, tmp_path):
    client = client_for(vbpr_path, tmp_path / "state")
    assert client.post("/items", data={"title": "no id"}).status_code == 422
    bad_id = client.post("/items", data={"item_id": "../x", "title": "t"})
    assert bad_id.status_code == 422 and bad_id.json()["detail"] == (
        "item_id: '../x' is not allowed: use 1-128 letters, digits and _ . : @ -, starting with a letter or "
        "digit, no '..'")
    for refused in ("a..b", "-a", "a b", "a" * 129):  # as the schema says (the fuzz test found ', ' was a 400)
        assert client.post("/items", data={"item_id": refused, "title": "t"}).status_code == 422, refused
    text_image = client.post("/items", data={"item_id": "ok2", "title": "t", "image": "not a file"})
    assert text_image.status_code == 422 and text_image.json()["detail"].startswith(
        "image: send the image as a file part with a filename")
    bad_fields = client.post("/items", data={"item_id": "ok1", "title": "t", "fields": "[1]"})
    assert bad_fields.status_code == 400 and "JSON object" in bad_fields.json()["detail"]

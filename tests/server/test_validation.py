"""Bad input to `/assistants` and `/threads` gets a clear 4xx `{"detail": …}`, never a 500."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.berth_server import BerthServer

UNKNOWN = "00000000-0000-4000-8000-000000000000"

#: (method, path template, JSON body) for every route taking an id; `{id}` is filled in.
ID_ROUTES = [
    ("GET", "/assistants/{id}", None),
    ("HEAD", "/assistants/{id}", None),
    ("PATCH", "/assistants/{id}", {"name": "x"}),
    ("DELETE", "/assistants/{id}", None),
    ("GET", "/assistants/{id}/schemas", None),
    ("GET", "/assistants/{id}/subgraphs", None),
    ("POST", "/assistants/{id}/versions", {}),
    ("POST", "/assistants/{id}/latest", {"version": 1}),
    ("GET", "/threads/{id}", None),
    ("HEAD", "/threads/{id}", None),
    ("PATCH", "/threads/{id}", {"metadata": {}}),
    ("DELETE", "/threads/{id}", None),
    ("POST", "/threads/{id}/copy", None),
    ("GET", "/threads/{id}/state", None),
    ("GET", f"/threads/{{id}}/state/{UNKNOWN}", None),
    ("POST", "/threads/{id}/state/checkpoint", {"checkpoint": {}}),
    ("POST", "/threads/{id}/state", {"values": {}}),
    ("GET", "/threads/{id}/history", None),
    ("POST", "/threads/{id}/history", {}),
]


def call(server: BerthServer, method: str, path: str, body: object = None) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", json=body)


@pytest.mark.parametrize(("method", "path", "body"), ID_ROUTES)
def test_non_uuid_id_is_422(server: BerthServer, method: str, path: str, body: object) -> None:
    response = call(server, method, path.format(id="not-a-uuid"), body)
    assert response.status_code == 422, response.text
    if method != "HEAD":
        assert "not-a-uuid" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path", "body"), ID_ROUTES)
def test_unknown_id_is_404(server: BerthServer, method: str, path: str, body: object) -> None:
    response = call(server, method, path.format(id=str(uuid.uuid4())), body)
    assert response.status_code == 404, response.text
    if method != "HEAD":
        assert isinstance(response.json()["detail"], str)


def test_graph_route_takes_graph_id_but_not_other_names(server: BerthServer) -> None:
    assert call(server, "GET", "/assistants/echo/graph").status_code == 200
    response = call(server, "GET", "/assistants/not-a-graph/graph")
    assert response.status_code == 422
    assert call(server, "GET", f"/assistants/{uuid.uuid4()}/graph").status_code == 404


def test_non_uuid_checkpoint_id_is_422(server: BerthServer) -> None:
    thread = call(server, "POST", "/threads", {"graph_id": "echo"}).json()
    response = call(server, "GET", f"/threads/{thread['thread_id']}/state/nope")
    assert response.status_code == 422
    assert "checkpoint_id" in response.json()["detail"]
    response = call(
        server,
        "POST",
        f"/threads/{thread['thread_id']}/history",
        {"before": "nope"},
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    "path",
    [
        "/assistants",
        "/assistants/search",
        "/assistants/count",
        "/threads",
        "/threads/search",
        "/threads/count",
    ],
)
def test_malformed_json_is_422(server: BerthServer, path: str) -> None:
    response = httpx.post(
        f"{server.url}{path}",
        content=b'{"metadata": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/assistants", {"graph_id": 5}, "graph_id"),
        ("POST", "/assistants", {}, "graph_id"),
        ("POST", "/assistants", {"graph_id": "echo", "metadata": [1]}, "metadata"),
        ("POST", "/assistants", {"graph_id": "echo", "if_exists": "update"}, "if_exists"),
        ("POST", "/assistants", {"graph_id": "echo", "assistant_id": "x"}, "assistant_id"),
        ("POST", "/assistants/search", {"limit": "many"}, "limit"),
        ("POST", "/assistants/search", {"limit": 0}, "limit"),
        ("POST", "/assistants/search", {"offset": -1}, "offset"),
        ("POST", "/assistants/search", {"sort_order": "up"}, "sort_order"),
        ("POST", "/assistants/search", {"select": ["bogus"]}, "select"),
        ("POST", "/assistants/count", {"metadata": "x"}, "metadata"),
        ("POST", "/threads", {"metadata": "x"}, "metadata"),
        ("POST", "/threads", {"thread_id": "abc"}, "thread_id"),
        ("POST", "/threads", {"if_exists": "replace"}, "if_exists"),
        ("POST", "/threads/search", {"status": "sleeping"}, "status"),
        ("POST", "/threads/search", {"ids": ["nope"]}, "ids"),
        ("POST", "/threads/search", {"sort_by": "values"}, "sort_by"),
        ("POST", "/threads/search", {"select": ["bogus"]}, "select"),
        ("POST", "/threads/count", {"values": 3}, "values"),
    ],
)
def test_wrong_types_are_422_naming_the_field(
    server: BerthServer, method: str, path: str, body: object, field: str
) -> None:
    response = call(server, method, path, body)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


def test_wrong_types_on_id_routes(server: BerthServer) -> None:
    assistant = call(server, "POST", "/assistants", {"graph_id": "echo"}).json()
    assistant_id = assistant["assistant_id"]
    cases = [
        ("PATCH", f"/assistants/{assistant_id}", {"metadata": 1}, "metadata"),
        ("POST", f"/assistants/{assistant_id}/latest", {"version": "one"}, "version"),
        ("POST", f"/assistants/{assistant_id}/versions", {"limit": -2}, "limit"),
    ]
    thread = call(server, "POST", "/threads", {"graph_id": "echo"}).json()
    thread_id = thread["thread_id"]
    cases += [
        ("PATCH", f"/threads/{thread_id}", {"metadata": "m"}, "metadata"),
        ("POST", f"/threads/{thread_id}/state", {"as_node": 3}, "as_node"),
        ("POST", f"/threads/{thread_id}/state/checkpoint", {}, "checkpoint"),
        ("POST", f"/threads/{thread_id}/history", {"limit": "x"}, "limit"),
        ("POST", f"/threads/{thread_id}/history", {"metadata": []}, "metadata"),
    ]
    for method, path, body, field in cases:
        response = call(server, method, path, body)
        assert response.status_code == 422, (path, response.text)
        assert field in response.json()["detail"], (path, response.text)
    response = httpx.get(f"{server.url}/threads/{thread_id}/history", params={"limit": "x"})
    assert response.status_code == 422
    assert "limit" in response.json()["detail"]
    response = httpx.get(f"{server.url}/threads/{thread_id}/history", params={"limit": 0})
    assert response.status_code == 422


def test_non_object_body_is_422(server: BerthServer) -> None:
    response = call(server, "POST", "/threads/search", [1, 2])
    assert response.status_code == 422
    response = call(server, "POST", "/assistants", "echo")
    assert response.status_code == 422


def test_bad_extract_paths_are_422(server: BerthServer) -> None:
    response = call(server, "POST", "/threads/search", {"extract": {"x": "values..bad"}})
    assert response.status_code == 422
    assert "extract" in response.json()["detail"]
    too_many = {f"a{i}": "values.x" for i in range(11)}
    response = call(server, "POST", "/threads/search", {"extract": too_many})
    assert response.status_code == 422

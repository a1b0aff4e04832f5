"""eolab._guard: the token check and the owner of a loopback connection."""

import os
import socket

from eolab import _guard


def test_refusal_names_what_is_missing_and_accepts_any_listed_token():
    assert _guard.refusal(None, ["s"])[0] == 401
    assert _guard.refusal("token s", ["s"])[0] == 401  # a hub token scheme is not the service token
    assert _guard.refusal("Bearer ", ["s"])[0] == 401
    assert _guard.refusal("Bearer wrong", ["s"]) == (403, "wrong service token")
    assert _guard.refusal("Bearer s", ["s"]) is None
    assert _guard.refusal("bearer w", ["", "s", "w"]) is None
    assert _guard.refusal("Bearer ", [""])[0] == 401  # an empty token never matches


def test_peer_uid_finds_the_owner_of_a_real_loopback_connection():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname()) as client:
            conn, _ = server.accept()
            with conn:
                assert _guard.peer_uid(client.getsockname(), server.getsockname()) == os.geteuid()
                # The server's end is not a client of the client: nothing to find in that direction.
                assert _guard.peer_uid(("127.0.0.1", 1), server.getsockname()) is None
    assert _guard.peer_uid(None, ("127.0.0.1", 80)) is None
    assert _guard.peer_uid(("not-an-address", 1), ("127.0.0.1", 80)) is None


def test_only_loopback_urls_get_the_token():
    assert _guard.is_loopback_url("http://127.0.0.1:8720/search")
    assert _guard.is_loopback_url("http://localhost:8720")
    assert not _guard.is_loopback_url("https://earth-search.aws.element84.com/v1")
    assert not _guard.is_loopback_url("http://127.0.0.1.example.com/")

"""Per-login hub passwords: generated once, hashes for the hub, the passwords for the operator once."""

from __future__ import annotations

import asyncio
import json

from eolab.hub import passwords


def test_each_login_gets_its_own_password_and_the_hub_only_hashes(tmp_path):
    assert passwords.ensure(tmp_path, ["alice", "bob", "admin"]) == ["alice", "bob", "admin"]
    plain = passwords.passwords(tmp_path)
    assert set(plain) == {"alice", "bob", "admin"} and len(set(plain.values())) == 3
    hashes = json.loads(passwords.hashes_file(tmp_path).read_text())
    for name, password in plain.items():
        assert password not in hashes[name] and passwords.check_password(password, hashes[name])
    assert not passwords.check_password(plain["bob"], hashes["alice"])
    for path in (passwords.hashes_file(tmp_path), passwords.logins_file(tmp_path)):
        assert path.stat().st_mode & 0o777 == 0o600


def test_passwords_are_kept_across_ups_and_new_logins_added(tmp_path):
    passwords.ensure(tmp_path, ["alice"])
    first = passwords.passwords(tmp_path)
    assert passwords.ensure(tmp_path, ["alice", "carol"]) == ["carol"]
    assert passwords.passwords(tmp_path)["alice"] == first["alice"]


def test_printed_once(tmp_path):
    passwords.ensure(tmp_path, ["alice", "bob"])
    assert set(passwords.take_unshown(tmp_path)) == {"alice", "bob"}
    assert passwords.take_unshown(tmp_path) == {}
    passwords.ensure(tmp_path, ["alice", "bob", "carol"])
    assert set(passwords.take_unshown(tmp_path)) == {"carol"}


def test_malformed_hashes_never_match():
    for stored in ("", "plain", "scrypt$1$2", "md5$x$y$z$a$b", "scrypt$16384$8$1$!!$!!"):
        assert not passwords.check_password("x", stored)


def test_authenticator_checks_the_login_against_its_own_hash(tmp_path):
    passwords.ensure(tmp_path, ["alice", "bob"])
    plain = passwords.passwords(tmp_path)
    auth = passwords.authenticator_class()(hashes_file=str(passwords.hashes_file(tmp_path)))

    def login(name, password):
        return asyncio.run(auth.authenticate(None, {"username": name, "password": password}))

    assert login("alice", plain["alice"]) == "alice"
    assert login(" Alice ", plain["alice"]) == "alice"
    assert login("alice", plain["bob"]) is None
    assert login("alice", "") is None
    assert login("mallory", plain["alice"]) is None

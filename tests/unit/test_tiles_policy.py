"""The tile service's address checks, on resolved names (no request is sent anywhere)."""

import pytest

from eolab.tiles._policy import refusal

NAMES = {
    "metadata.example": ["169.254.169.254"],        # cloud metadata (link-local)
    "intranet.example": ["10.1.2.3"],
    "router.example": ["192.168.0.1"],
    "docker.example": ["172.17.0.1"],
    "ipv6-local.example": ["fe80::1", "fd00::5"],
    "sneaky.example": ["93.184.216.34", "127.0.0.1"],  # one public, one loopback answer
    "mapped.example": ["::ffff:127.0.0.1"],
    "assets.example.evil.example": ["10.9.9.9"],
    "storage.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
}


def resolver(host, port):
    if host in NAMES:
        return NAMES[host]
    if host.replace(".", "").isdigit() or ":" in host:
        return [host]
    raise OSError("name not known")


TRUSTED = ["http://127.0.0.1:8710", "http://127.0.0.1:8720"]


@pytest.mark.parametrize("url", [
    "http://metadata.example/latest/meta-data/", "http://169.254.169.254/latest/meta-data/",
    "http://intranet.example/x.tif", "http://router.example/", "http://docker.example:2375/info",
    "http://ipv6-local.example/x.tif", "http://sneaky.example/x.tif", "http://mapped.example/x.tif",
    "http://127.0.0.1:5433/", "http://127.0.0.1:8714/collections", "http://localhost:8710/x.tif",
    "http://[::1]:8710/x.tif", "http://0.0.0.0:8710/x.tif",
])
def test_inner_addresses_are_refused(url):
    reason = refusal(url, TRUSTED, resolver=lambda h, p: resolver("127.0.0.1" if h == "localhost" else h, p))
    assert reason and "may not be read" in reason


@pytest.mark.parametrize("url", ["/etc/passwd", "file:///etc/passwd", "/vsicurl/http://127.0.0.1/x.tif",
                                 "gopher://storage.example/"])
def test_only_http_urls(url):
    assert "http(s) URLs only" in refusal(url, TRUSTED, resolver=resolver)


def test_the_stacks_services_and_public_storage_are_read():
    assert refusal("http://127.0.0.1:8710/sentinel-2-l2a/B04.tif", TRUSTED, resolver=resolver) is None
    assert refusal("http://127.0.0.1:8720/collections/a/items/b", TRUSTED, resolver=resolver) is None
    assert refusal("https://storage.example/tiles/B04.tif", TRUSTED, resolver=resolver) is None
    # a trusted prefix covers its paths, not other ports that start with the same digits
    assert "may not be read" in refusal("http://assets.example.evil.example/x.tif", ["http://assets.example"],
                                     resolver=resolver)
    assert "may not be read" in refusal("http://127.0.0.1:8711/x.tif", TRUSTED, resolver=resolver)
    assert refusal("http://127.0.0.1:8710?x=1", TRUSTED, resolver=resolver) is None


def test_unresolvable_names_and_credentials_and_public_off():
    assert "cannot resolve" in refusal("http://nowhere.example/x.tif", TRUSTED, resolver=resolver)
    assert "credentials" in refusal("http://user:pw@storage.example/x.tif", TRUSTED, resolver=resolver)
    assert "not a catalogue or configured host" in refusal("https://storage.example/x.tif", TRUSTED,
                                                            allow_public=False, resolver=resolver)


def test_the_egress_proxy_connects_to_the_address_it_checked():
    """The proxy resolves a name once: the address it checked is the one it connects to (a second
    lookup could answer with an inner address), and every hop of a redirect gets the same policy."""
    from eolab.tiles._egress import checker

    answers = {"tiles.example.org": [["93.184.216.34"], ["169.254.169.254"]], "127.0.0.1": [["127.0.0.1"]]}

    def resolver(host, port):
        return answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]

    check = checker(["http://127.0.0.1:8740"], allow_public=True, resolver=resolver)
    assert check("https://tiles.example.org/a.tif") == (None, "93.184.216.34")
    problem, address = check("https://tiles.example.org/a.tif")  # now rebinds to the metadata address
    assert address is None and "169.254.169.254" in problem
    assert check("http://127.0.0.1:8740/cog.tif") == (None, "127.0.0.1")  # the stack's own, trusted
    problem, address = check("http://127.0.0.1:5432/")  # another local port
    assert address is None and "local, private or link-local" in problem
    assert checker([], allow_public=False, resolver=resolver)("https://tiles.example.org/a.tif")[1] is None

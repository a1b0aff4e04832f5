"""eolab's one STAC client: pystac-client underneath, federation answers and clear errors on top.

pystac-client does the HTTP (``StacApiIO``: sessions, headers, request modifiers for signing,
``next``-link following with its POST ``merge`` rule). What it drops, this keeps: the broker's
``federation:missing`` and ``numberMatched`` of every page, and one page at a time for the widgets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from eolab import ids, settings
from eolab._guard import service_headers
from eolab.errors import EolabError, NoItemsError
from eolab.search._params import CollectionInfo, Collections, search_body
from eolab.search._results import Page

DEFAULT_TIMEOUT = 30.0  # s, for a STAC API that does not say how long it may take
TIMEOUT_MARGIN = 5.0  # s beyond the broker's promise: the answer's transfer
MAX_TIMEOUT = 900.0  # s: past this a cell looks hung whatever the broker says


def catalogue_url(url: str | None = None) -> str:
    """The broker to use: ``url``, else ``$EOLAB_CATALOG_URL``."""
    if url is not None and not isinstance(url, str):
        raise EolabError(f"the catalogue is one STAC API URL, not {type(url).__name__} {url!r}",
                         hint="pass the broker's URL: it federates every member (a list of members is "
                              "configured in the broker, not here)")
    url = settings.required(url or settings.client().catalog_url, "catalogue URL", "EOLAB_CATALOG_URL",
                            hint="pass the broker URL or set EOLAB_CATALOG_URL (the hub sets it for you)")
    if "://" not in url:  # pystac-client would take it for a file name
        raise EolabError(f"catalogue URL {url!r} has no scheme", hint=f"e.g. http://{url}")
    return url.rstrip("/")


class Catalogue:
    """A client of the federated broker (or any STAC API with POST /search and token paging).

    ``headers`` go with every request; ``request_modifier`` (a pystac-client hook) may sign or
    change each request. ``client`` is the pystac-client ``Client`` on the same connection.
    ``timeout`` (s) is how long an answer is waited for; by default the broker's own promise
    (``eolab:answer_within_s`` on its landing page, a few seconds more), else 30 s.
    """

    def __init__(self, url: str | None = None, *, headers: dict[str, str] | None = None,
                 timeout: float | None = None, request_modifier: Callable | None = None):
        from pystac_client.stac_api_io import StacApiIO

        self.url = catalogue_url(url)
        headers = dict(headers or {})
        if "Authorization" not in headers:
            # The stack's internal services want the service token from other accounts.
            headers.update(service_headers(self.url))
        from urllib3 import Retry

        # Connections are retried (a stack restarting); an answer that is late is not: the catalogue
        # has the request, and asking again would triple the wait for a slow provider.
        retry = Retry(total=2, connect=2, read=0)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not 0 < timeout < float("inf")):
            raise EolabError(f"timeout must be a number of seconds above 0, not {timeout!r}",
                             hint="e.g. Catalogue(url, timeout=120)")
        self.timeout = float(timeout) if timeout is not None else DEFAULT_TIMEOUT
        self._fit_timeout = timeout is None
        self.io = StacApiIO(headers=headers, request_modifier=request_modifier, timeout=self.timeout,
                            max_retries=retry)
        self._client = None

    def __repr__(self) -> str:
        return f"Catalogue({self.url!r})"

    def close(self) -> None:
        self.io.session.close()

    def __enter__(self) -> "Catalogue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def client(self):
        """The pystac-client ``Client`` of this catalogue (opened on first use)."""
        if self._client is None:
            from pystac_client import Client

            self._fit()
            self._client = self._call(lambda: Client.open(self.url, stac_io=self.io))
        return self._client

    # -- HTTP, with pystac-client's errors turned into one-line EolabErrors
    def _call(self, fn: Callable[[], Any]) -> Any:
        from pystac_client.exceptions import APIError

        try:
            return fn()
        except APIError as exc:
            raise self._explained(exc) from None
        except (ValueError, json.JSONDecodeError):
            raise EolabError(f"the catalogue at {self.url} did not answer with JSON") from None

    def _explained(self, exc: Exception) -> EolabError:
        status = getattr(exc, "status_code", None)
        if status is None:
            text = str(exc).lower()
            if "read timed out" in text or "readtimeout" in text:
                return EolabError(f"the catalogue at {self.url} did not answer within {self.timeout:g} s",
                                  hint="a provider behind it may be slow: retry, narrow the search, or "
                                       "Catalogue(url, timeout=120)")
            return EolabError(f"the catalogue at {self.url} is not reachable ({str(exc)[:120]})",
                              hint="is the stack running? see 'eolab status'")
        try:
            detail = json.loads(str(exc)).get("description") or str(exc)
        except (ValueError, AttributeError):
            detail = str(exc)
        hint = "check the filter and search parameters" if status == 400 else None
        return EolabError(f"the catalogue answered {status}: {str(detail)[:300]}", hint=hint)

    def _fit(self) -> None:
        """Wait as long as the broker may take to answer: a federation configured with long member
        budgets answers after more than 30 s, and the client must not give up before it does."""
        if not self._fit_timeout:
            return
        self._fit_timeout = False
        from pystac_client.exceptions import APIError

        try:
            landing = json.loads(self.io.read_text(f"{self.url}/"))
        except APIError as exc:
            text = str(exc).lower()
            if getattr(exc, "status_code", None) is None and any(
                    word in text for word in ("timed out", "failed to establish", "connection refused")):
                # Not reachable, or no answer in time (its landing page asks no provider): say so
                # now rather than wait as long again for the request itself.
                raise self._explained(exc) from None
            return  # an HTTP error of the landing page: the request itself will say what is wrong
        except ValueError:
            return  # not JSON: a plain STAC API with an HTML front page
        promised = landing.get("eolab:answer_within_s") if isinstance(landing, dict) else None
        if isinstance(promised, (int, float)) and not isinstance(promised, bool) and 0 < promised < float("inf"):
            self.timeout = min(max(DEFAULT_TIMEOUT, float(promised) + TIMEOUT_MARGIN), MAX_TIMEOUT)
            self.io.timeout = self.timeout

    def _read(self, source: Any, **kwargs: Any) -> dict:
        self._fit()
        body = self._call(lambda: json.loads(self.io.read_text(source, **kwargs)))
        if not isinstance(body, dict):
            raise EolabError(f"the catalogue at {self.url} did not answer with a JSON object")
        return body

    # -- collections
    def collections(self) -> Collections:
        body = self._read(f"{self.url}/collections")
        listed = body.get("collections") or []
        if not isinstance(listed, list):
            raise EolabError(f"the catalogue at {self.url} lists its collections as a {type(listed).__name__}, "
                             "not a list", hint="is it a STAC API? its /collections answer is not STAC")
        infos, broken = [], []
        for c in listed:
            try:
                infos.append(CollectionInfo.from_stac(c))
            except (AttributeError, IndexError, KeyError, TypeError, ValueError):
                broken.append(c.get("id") if isinstance(c, dict) and isinstance(c.get("id"), str) else repr(c)[:40])
        if broken:  # the others are still of use: leave these out, and say so
            import warnings

            warnings.warn(f"the catalogue at {self.url} lists {len(broken)} collection(s) that are not STAC "
                          f"(no id, or an extent of the wrong shape), left out: {', '.join(broken[:3])}", stacklevel=2)
        return Collections(infos, list(body.get("federation:missing") or []))

    def _unknown_collections(self, wanted: Sequence[str]) -> str | None:
        """Which of ``wanted`` the catalogue does not list (with the nearest names), or None: a
        misspelt id is searched like any other and finds nothing (STAC APIs answer it so)."""
        import difflib

        try:
            listed = self.collections()
        except EolabError:
            return None
        if listed.missing:
            return None  # a provider that did not answer may hold it
        full = {c.id for c in listed}
        plain = {c.collection for c in listed}
        problems = []
        for cid in wanted:
            if cid in full or cid in plain:
                continue
            near = difflib.get_close_matches(cid, sorted(full | plain), n=2, cutoff=0.6) or \
                difflib.get_close_matches(cid.lower(), sorted(full | plain), n=2, cutoff=0.6)
            problems.append(f"collection {cid!r} is not in the catalogue"
                            + (f" (did you mean {' or '.join(repr(n) for n in near)}?)" if near else ""))
        return "; ".join(problems) or None

    def providers(self) -> dict[str, list[CollectionInfo]]:
        return self.collections().by_provider()

    # -- search
    def search(self, collections: str | Sequence[str] | None = None, **parameters: Any) -> Page:
        """The first page of a search; parameters as :func:`eolab.search.search_body`."""
        request = {"method": "POST", "href": f"{self.url}/search", "body": search_body(collections, **parameters)}
        return self.request_page(request, number=1)

    def request_page(self, request: dict, number: int) -> Page:
        """One page for a stored request: the first one, or a ``next`` request of an earlier page."""
        from pystac import Link

        if "link" in request:  # pystac-client applies the link's method, body and merge rule
            body = self._read(Link.from_dict(request["link"]), parameters=request.get("parameters") or {})
        else:
            body = self._read(request["href"], method=request.get("method") or "GET",
                              parameters=request.get("body"))
        nxt = next((ln for ln in body.get("links", []) if ln.get("rel") == "next"), None)
        next_request = None
        if nxt:
            base = request.get("parameters") if "link" in request else request.get("body")
            next_request = {"link": nxt, "parameters": base or {}}
        context = body.get("context") or {}
        features = body.get("features") or []
        bad = [f for f in features if not isinstance(f, dict) or not isinstance(f.get("id"), str)] \
            if isinstance(features, list) else [features]
        if bad:
            raise EolabError(f"page {number} of the search at {self.url} holds what is not a STAC item: "
                             f"{repr(bad[0])[:60]}",
                             hint="the catalogue answers outside STAC; ask its operator, or search another")
        return Page(items=list(features), number=number, request=request,
                    next_request=next_request, missing=list(body.get("federation:missing") or []),
                    number_matched=body.get("numberMatched", context.get("matched")),
                    member_errors=dict(body.get("eolab:member_errors") or {}),
                    waiting=dict(body.get("eolab:member_waiting") or {}))

    def next_page(self, page: Page) -> Page | None:
        if page.next_request is None:
            return None
        return self.request_page(page.next_request, page.number + 1)

    def pages(self, collections: str | Sequence[str] | None = None, **parameters: Any) -> Iterator[Page]:
        page: Page | None = self.search(collections, **parameters)
        while page is not None:
            yield page
            page = self.next_page(page)

    def items(self, collections: str | Sequence[str] | None = None, max_items: int | None = None,
              **parameters: Any) -> list[dict]:
        """Every item of a search (following the tokens), at most ``max_items``."""
        out: list[dict] = []
        for page in self.pages(collections, **parameters):
            out += page.items
            if max_items is not None and len(out) >= max_items:
                return out[:max_items]
        return out

    def find(self, collections: str | Sequence[str], *, bbox: Sequence[float] | None = None,
             datetime: Any = None, query: dict | None = None, max_items: int | None = None,
             complete: bool = True) -> list:
        """Every item of ``collections`` as pystac Items sorted by time: what a template works on.

        A plain collection id matches every provider's collection of that name. With ``complete``
        (the default) a provider missing from any page is an error: a template must not silently
        work on part of the data.
        """
        import pystac

        wanted = [collections] if isinstance(collections, str) else list(collections)
        if not wanted:
            raise EolabError("no collections given", hint="e.g. collections=['sentinel-2-l2a']")
        body = search_body(wanted, bbox=bbox, datetime=datetime, limit=100, sortby=None)
        if query:
            body["query"] = query
        found: dict[tuple[str, str], dict] = {}
        missing: set[str] = set()
        page: Page | None = self.request_page({"method": "POST", "href": f"{self.url}/search", "body": body}, 1)
        while page is not None:
            missing.update(page.missing)
            for item in page.items:
                found.setdefault((item.get("collection") or "", item["id"]), item)
            if max_items is not None and len(found) >= max_items:
                break
            page = self.next_page(page)
        if missing and complete:
            raise EolabError(f"provider(s) {', '.join(sorted(missing))} did not answer the search for "
                             f"{', '.join(wanted)}", hint="retry later, or pass complete=False to go on without them")
        if not found:
            unknown = self._unknown_collections(wanted)
            if unknown:
                raise NoItemsError(f"no items: {unknown}", hint="use the collection ids the catalogue lists "
                                                                "(Catalogue.collections())")
            raise NoItemsError(f"no items of {', '.join(wanted)} found at {self.url}",
                             hint="widen the area, dates or collections")
        items = [pystac.Item.from_dict(i, preserve_dict=True) for i in found.values()]
        items.sort(key=lambda it: (it.datetime, it.id))
        return items[:max_items] if max_items is not None else items


def open_catalog(url: str | None = None, headers: dict[str, str] | None = None):
    """A pystac-client ``Client`` on the eolab catalogue (``url`` or ``$EOLAB_CATALOG_URL``), or any STAC API."""
    return Catalogue(url, headers=headers).client


def summarize_items(items: Sequence) -> Any:
    """A small table: items and dates per provider and collection."""
    import pandas as pd

    rows = [{"provider": ids.item_provider(it), "collection": ids.plain(ids.item_collection(it)),
             "date": it.datetime.date() if it.datetime else None} for it in items]
    df = pd.DataFrame(rows)
    return df.groupby(["provider", "collection"]).agg(items=("date", "size"), dates=("date", "nunique"),
                                                      first=("date", "min"), last=("date", "max"))

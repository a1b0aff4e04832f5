"""Search, page, select and load catalogue items from Python: everything the catalogue widgets do.

The widgets in :mod:`eolab.widgets` are views over this package, so a notebook can run the same
steps headless::

    import eolab
    from eolab.search import Catalogue, select

    cat = Catalogue("http://127.0.0.1:8720")            # or $EOLAB_CATALOG_URL (the broker)
    cat.providers()                                      # {provider: [CollectionInfo, ...]}
    page = cat.search(["sentinel-2-l2a"], bbox=[20.60, 47.65, 20.70, 47.72],
                      datetime=("2026-04-01", "2026-06-30"), max_cloud=30, limit=20)
    page.missing                                         # providers that did not answer
    page2 = cat.next_page(page)                          # follows the broker's paging token
    items = select(page.items, [page.items[0]["id"]])    # -> pystac ItemCollection
    cube = eolab.load_cube(items, bands=["B04", "B08"], resolution=10)

``Catalogue`` is eolab's one STAC client (pystac-client underneath; ``Catalogue.client`` is the
pystac-client ``Client``). Pure parts: ``_params`` (search bodies), ``_results`` (rows, pages).
"""

from eolab.search._client import Catalogue, catalogue_url, open_catalog, summarize_items
from eolab.search._params import (
                                  DEFAULT_SORTBY,
                                  CollectionInfo,
                                  Collections,
                                  cloud_filter,
                                  datetime_interval,
                                  search_body,
)
from eolab.search._results import (
                                  ROW_COLUMNS,
                                  Page,
                                  item_key,
                                  item_row,
                                  select,
                                  sort_rows,
                                  to_geodataframe,
                                  to_item_collection,
)
from eolab.search._sizes import human_bytes, size_estimate

__all__ = ["DEFAULT_SORTBY", "ROW_COLUMNS", "Catalogue", "CollectionInfo", "Collections", "Page", "catalogue_url",
           "cloud_filter", "datetime_interval", "human_bytes", "item_key", "item_row", "open_catalog",
           "search_body", "select", "size_estimate", "sort_rows", "summarize_items", "to_geodataframe",
           "to_item_collection"]

"""Publish template results as STAC items, and find them again.

Two destinations, the same item:

* a per-user **static catalogue**: a self-contained pystac ``Catalog`` (default ``~/eolab-results``,
  or ``$EOLAB_RESULTS_CATALOG``) with one collection per workflow, readable by any STAC client
  (``pystac.Catalog.from_file``); :func:`publish` and :func:`find_results`;
* a **member provider** of the federation that accepts STAC Transactions (the ``workspace`` member
  of the catalogue configuration, or any transactional STAC API by URL), in the per-user collection
  ``results-<user>``, created on first publish; :func:`publish` with ``to="workspace"``,
  :func:`publish_to_provider`, :func:`upsert_items`. The broker only reads: the results are found
  through it as ``workspace|results-<user>`` like any other collection (:func:`find_published`,
  :class:`eolab.search.Catalogue`, the catalogue browser).

Writing to the workspace needs its token (reads need none, see :mod:`eolab.stack.workspace`):
``$EOLAB_WORKSPACE_TOKEN``, else the run directory's token file when this account may read it. In a
hub kernel ``$EOLAB_WORKSPACE_URL`` is the hub's catalog gate instead, and the kernel's hub token
(``$JUPYTERHUB_API_TOKEN``) lets it write into ``results-<user>`` only.

Each item holds the result files as assets, its footprint and time range, the provenance record
(``eolab:provenance``: workflow, parameters, version, the number of source items and the ids of
the first ``LISTED_SOURCES`` by provider and collection; ``source_items_in`` names the provenance
files that list them all) and ``derived_from`` links to those source items. Re-publishing the same item id
replaces it (an upsert: no duplicates).
"""

from eolab.analysis.publish._items import (
                                          INVALID_ID_CHARS,
                                          LISTED_SOURCES,
                                          MEDIA_TYPES,
                                          MEMBER_PREFIX,
                                          SIDECAR_SUFFIX,
                                          TRANSACTION_CONFORMANCE,
                                          WORKSPACE,
                                          build_item,
                                          default_catalog_dir,
                                          item_id_for,
                                          item_problems,
)
from eolab.analysis.publish._provider import (
                                          Provider,
                                          current_user,
                                          find_published,
                                          publish_to_provider,
                                          results_collection,
                                          results_collection_id,
                                          upsert_items,
                                          writable_provider,
)
from eolab.analysis.publish._static import find_results, publish

__all__ = ["INVALID_ID_CHARS", "LISTED_SOURCES", "MEDIA_TYPES", "MEMBER_PREFIX", "SIDECAR_SUFFIX",
           "TRANSACTION_CONFORMANCE", "WORKSPACE", "Provider", "build_item", "current_user", "default_catalog_dir",
           "find_published", "find_results", "item_id_for", "item_problems", "publish", "publish_to_provider",
           "results_collection", "results_collection_id", "upsert_items", "writable_provider"]

"""``python -m eolab.hub.meter``: the byte meter of the hub whose settings ``$EOLAB_HUB_SETTINGS``
names (a managed service of the hub, run as the hub's account; :mod:`eolab.usage._meter`)."""

from __future__ import annotations

import json
import logging


def main() -> None:
    from eolab.hub.settings import read_resolved
    from eolab.usage._ledger import Ledger
    from eolab.usage._meter import meter_secret, serve

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    S = read_resolved()
    secret = meter_secret(json.loads(S.secrets_file.read_text()))
    trusted = S.meter_allow or ([S.assets_url] if S.assets_url else [])
    serve(S.host, S.meter_port, secret, trusted, Ledger(S.usage_db))


if __name__ == "__main__":
    main()

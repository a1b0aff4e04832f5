"""The ``eolab`` command: demo data and the local stack. Errors print one line, not a traceback."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from eolab import __version__
from eolab.errors import EolabError


def _config(args):
    from eolab.config import load_config

    return load_config(args.config, run_dir=args.run_dir, data_dir=args.data_dir, port_offset=args.port_offset)


def _print_statuses(statuses, title: str) -> None:
    print(title)
    width = max(len(s.name) for s in statuses)
    for s in statuses:
        detail = f"  ({s.detail})" if s.detail else ""
        print(f"  {s.name:<{width}}  {s.state:<8} {s.url}{detail}")


def cmd_demo_data(args) -> int:
    from eolab.demo import generate

    out = Path(args.out) if args.out else Path(_config(args).data_dir)
    if (out / "manifest.json").exists() and not args.force:
        print(f"demo data already in {out} (use --force to generate again)")
        return 0
    manifest = generate(out, size=args.size, seed=args.seed, progress=not args.quiet)
    counts = ", ".join(f"{n} {c}" for c, n in manifest["collections"].items())
    print(f"demo data ({args.size}) written to {out}: {counts}")
    return 0


def cmd_stack(args) -> int:
    from eolab.stack import core as stack

    config = _config(args)
    with_hub = args.command != "catalog"  # `eolab up` is everything; `eolab catalog up` the catalogue only
    if with_hub:
        from eolab import hub
    if args.action == "up":
        statuses = stack.up(config, progress=not args.quiet)
        _print_statuses(statuses, "eolab catalogue stack (127.0.0.1):")
        print(f"  logs and PID files: {Path(config.run_dir).resolve()}")
        print(f"  federated catalogue: {config.broker_url}  (collections are 'member|collection')")
        print(f"  try: curl '{config.broker_url}/search?limit=1'")
        for member in config.demo_members:
            print(f"       curl '{config.member_url(member)}/search?limit=1'")
        _check_remote_members(config)
        if with_hub:
            _print_statuses(hub.up(config), "eolab hub:")
            hub.print_logins(config)
    elif args.action == "down":
        if with_hub:
            _print_statuses(hub.down(config), "eolab hub:")
        _print_statuses(stack.down(config), "eolab catalogue stack:")
    else:
        _print_statuses(stack.status(config), "eolab catalogue stack:")
        if with_hub:
            _print_statuses(hub.status(config), "eolab hub:")
    return 0


def _check_remote_members(config) -> None:
    """Warn (never fail ``up``) about enabled remote members that do not answer or lack credentials."""
    from eolab.data import onboarding

    for report in onboarding.check_remote_members(config):
        if report.passed:
            print(f"  remote member {report.target}: ok")
        else:
            print(f"warning: remote member {report.target} has problems:", file=sys.stderr)
            for status, text in report.lines:
                if status != onboarding.OK:
                    print(f"  [{status:>4}] {text}", file=sys.stderr)


def cmd_templates(args) -> int:
    from eolab.analysis import templates

    if args.action == "list":
        for t in templates.list_templates():
            print(f"{t['name']}: {t['title']}")
            print(textwrap.fill(t["summary"], width=88, initial_indent="    ", subsequent_indent="    "))
        return 0
    if not args.name:
        raise EolabError("'templates clone' needs a template name", hint="see 'eolab templates list'")
    path = templates.clone(args.name, args.dest, overwrite=args.force)
    print(f"template {args.name} copied to {path}")
    return 0


def cmd_claims(args) -> int:
    import warnings

    from eolab.analysis import claims

    with warnings.catch_warnings():  # the report lists the warnings itself
        warnings.simplefilter("ignore", claims.ClaimsWarning)
        print(claims.check_report(args.file, layer=args.layer, schema=args.schema, encoding=args.encoding))
    return 0


def cmd_members(args) -> int:
    from eolab.data import onboarding

    report = onboarding.check(args.target, _config(args) if "://" not in args.target else None, read=not args.no_read)
    print(report.text())
    return 0 if report.passed else 1


def cmd_usage(args) -> int:
    from eolab import usage

    def on_host():  # the hub's host, as its operator: the ledger file itself, and the configured limits
        from eolab.hub import hub_dir, load_settings

        return hub_dir(_config(args)) / "usage.sqlite", load_settings().usage_limits

    print(usage.show(args.month, all_users=args.all, daily=args.daily, on_host=on_host))
    return 0


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="catalogue configuration file (default: $EOLAB_CATALOG_CONFIG or the packaged one)")
    parser.add_argument("--run-dir", help="where PID files, logs and the database live (default from config: .eolab)")
    parser.add_argument("--data-dir", help="demo data directory (default from config: .eolab/demo-data)")
    parser.add_argument("--port-offset", type=int, help="add this to every local port (run two stacks side by side)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, like every other eolab error
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="eolab", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"eolab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser("demo-data", help="generate the seeded demo data set with ground truth")
    demo.add_argument("--size", default="default", help="small (tests, seconds) or default")
    demo.add_argument("--out", help="output directory (default: the configured data_dir)")
    demo.add_argument("--seed", type=int, default=20260301, help="random seed (default %(default)s)")
    demo.add_argument("--force", action="store_true", help="generate again even if the data exist")
    _add_config_args(demo)
    demo.set_defaults(func=cmd_demo_data)

    catalog = commands.add_parser("catalog", help="the local catalogue stack: pgstac members and asset server")
    catalog.add_argument("action", choices=("up", "down", "status"))
    _add_config_args(catalog)
    catalog.set_defaults(func=cmd_stack)

    gallery = commands.add_parser("templates", help="list the template workflows or copy one into your workspace")
    gallery.add_argument("action", choices=("list", "clone"))
    gallery.add_argument("name", nargs="?", help="template to clone (see 'eolab templates list')")
    gallery.add_argument("dest", nargs="?", help="destination folder (default: ./NAME)")
    gallery.add_argument("--force", action="store_true", help="overwrite files in a non-empty destination")
    gallery.set_defaults(func=cmd_templates)

    claims = commands.add_parser("claims", help="farmers' claims files: check what is found and how it maps")
    claims.add_argument("action", choices=("check",))
    claims.add_argument("file", help="a national parcel file (GeoPackage, Shapefile zip, GeoJSON, GeoParquet)")
    claims.add_argument("--schema", help="use this schema instead of detecting it")
    claims.add_argument("--layer", help="layer of a multi-layer file")
    claims.add_argument("--encoding", help="text encoding of a Shapefile without a correct .cpg, e.g. cp1257")
    claims.set_defaults(func=cmd_claims)

    members = commands.add_parser("members", help="check a provider: API, bands, scaling, one asset read")
    members.add_argument("action", choices=("check",))
    members.add_argument("target", help="a member id of the configuration, or a STAC API URL")
    members.add_argument("--no-read", action="store_true", help="do not read an asset")
    _add_config_args(members)
    members.set_defaults(func=cmd_members)

    use = commands.add_parser("usage", help="core-hours, memory-hours and bytes read this month, and your limit")
    use.add_argument("--month", help="YYYY-MM (default: this month, UTC)")
    use.add_argument("--all", action="store_true", help="every user (admins; on the hub's host: always)")
    use.add_argument("--daily", action="store_true", help="also per day (admins)")
    _add_config_args(use)
    use.set_defaults(func=cmd_usage)

    for action, text in (("up", "start everything eolab runs locally"), ("down", "stop what 'up' started"),
                         ("status", "show what runs")):
        sub = commands.add_parser(action, help=text)
        _add_config_args(sub)
        sub.set_defaults(func=cmd_stack, action=action)
    return parser




def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EolabError as exc:
        print(f"eolab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("eolab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `eolab templates list | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

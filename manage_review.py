"""List, show and mark answers in the human-review queue, and count ratings per variant.

    python manage_review.py list [--status pending|reviewed|all] [--tenant acme] [--limit 50]
    python manage_review.py show REQUEST_ID [--tenant acme]
    python manage_review.py mark REQUEST_ID [--tenant acme] [--note "fixed the page"] [--by me]
    python manage_review.py stats

Reads feedback.db under the auth.state_dir that serve_config.yaml names, whether or not the
service runs (GET /admin/review and POST /admin/review/{request_id} do the same over HTTP).
Items print as JSON lines; questions were stored with their PII redacted.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from dataclasses import asdict
from pathlib import Path

import yaml
from pydantic import ValidationError

from deployments.feedback_store import ledger_path
from deployments.launch import rag_app_settings
from ragcore.feedback.ledger import SqliteFeedback, only_item
from utils.auth_settings import NAME_RE
from utils.errors import InputError, NotFoundError, RequestRejectedError, validation_line
from utils.paths import PROJECT_ROOT


def _tenant(value: str) -> str:
    if not NAME_RE.match(value):
        raise argparse.ArgumentTypeError(f"invalid tenant {value!r}")
    return value


def _limit(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 100_000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 100000, not {value!r}")
    return int(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=PROJECT_ROOT / "serve_config.yaml",
                        help="the Serve config whose auth.state_dir holds feedback.db")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="queued answers, one JSON line each")
    listing.add_argument("--status", choices=("pending", "reviewed", "all"), default="pending")
    listing.add_argument("--tenant", type=_tenant, default=None)
    listing.add_argument("--limit", type=_limit, default=50)
    for name, what in (("show", "one queued answer, whole"), ("mark", "mark one reviewed")):
        command = commands.add_parser(name, help=what)
        command.add_argument("request_id")
        command.add_argument("--tenant", type=_tenant, default=None,
                             help="needed when two tenants used the same request id")  # fmt: skip
    mark = commands.choices["mark"]
    mark.add_argument("--note", default="", help="what was found or done")
    mark.add_argument("--by", default=None, help="the reviewer (default: the OS user)")
    commands.add_parser("stats", help="ratings per variant and the pending count")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, ledger: SqliteFeedback) -> int:
    """Carry out one command."""
    if args.command == "list":
        for item in ledger.queue(args.tenant, args.status, args.limit):
            print(json.dumps(asdict(item), ensure_ascii=False))
    elif args.command == "stats":
        print(json.dumps({"pending": ledger.pending(), "ratings": ledger.counts()}))
    else:
        try:
            item = only_item(ledger.queue(args.tenant, "all", 2, args.request_id),
                             args.request_id)  # fmt: skip
        except (NotFoundError, RequestRejectedError) as exc:
            print(f"error: {exc} (see `manage_review.py list`; --tenant names one)",
                  file=sys.stderr)  # fmt: skip
            return 2
        if args.command == "mark":
            tenant = item.record.tenant
            marked = ledger.mark(tenant, args.request_id, args.by or getpass.getuser(), args.note)
            assert marked is not None
            item = marked
        print(json.dumps(asdict(item), ensure_ascii=False, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse, open the ledger, run; one error line and exit 2 on bad input."""
    args = parse_args(argv)
    try:
        config = rag_app_settings(args.config)
        path = ledger_path(config)
        if not path.exists():
            print(f"error: no review queue yet at {path} (the service creates it when it "
                  "records its first answer)", file=sys.stderr)  # fmt: skip
            return 2
        ledger = SqliteFeedback(path, config.feedback.retain_days * 86400)
    except (OSError, KeyError, StopIteration, yaml.YAMLError) as exc:
        print(f"error: cannot read the config {args.config}: {exc}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"error: invalid setting {validation_line(exc)}", file=sys.stderr)
        return 2
    try:
        return run(args, ledger)
    finally:
        ledger.close()


if __name__ == "__main__":
    sys.exit(main())

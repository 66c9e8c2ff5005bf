"""Create, list, rotate and revoke API keys, and set tenant limits.

    python manage_keys.py create --tenant acme [--rpm 60] [--tokens-per-minute 20000]
                                 [--tokens-per-day 500000] [--collections docs,handbook]
    python manage_keys.py list [--tenant acme]
    python manage_keys.py rotate KEY_ID [--grace-s 300]
    python manage_keys.py revoke KEY_ID
    python manage_keys.py limits --tenant acme --rpm 120 --tokens-per-day 1000000

Writes the store that serve_config.yaml names (auth.store: the embedded SQLite under
auth.state_dir, or Redis), whether or not the service runs: a running service picks changes up
within auth.key_cache_s. Only `create` and `rotate` print a secret, once, on their last line.
Having this file and the store is the admin scope.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml
from pydantic import ValidationError

from deployments.launch import rag_app_settings
from ragcore.tenancy.keys import (
    DEFAULT_SCOPES,
    SCOPES,
    ApiKey,
    Limits,
    hash_secret,
    new_key_id,
    new_secret,
)
from ragcore.tenancy.stores import KeyAdmin
from utils.auth_settings import NAME_RE, AuthSettings
from utils.errors import InputError, validation_line
from utils.paths import PROJECT_ROOT


def _names(kind: str, value: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    for name in names:
        if not NAME_RE.match(name) or (allowed is not None and name not in allowed):
            options = f" (one of {', '.join(allowed)})" if allowed else ""
            raise argparse.ArgumentTypeError(f"invalid {kind} {name!r}{options}")
    return names


def _limit_flags(parser: argparse.ArgumentParser) -> None:
    for flag, what in (("--rpm", "requests per minute"),
                       ("--tokens-per-minute", "prompt + completion tokens per minute"),
                       ("--tokens-per-day", "prompt + completion tokens per UTC day"),
                       ("--max-streams", "concurrent streams")):  # fmt: skip
        parser.add_argument(flag, type=_positive, default=None, help=what)


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {value!r}")
    return int(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=PROJECT_ROOT / "serve_config.yaml",
                        help="the Serve config whose auth settings name the store")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="a new key; prints it once")
    create.add_argument("--tenant", required=True, type=lambda v: _names("tenant", v)[0])
    create.add_argument("--name", default="", help="a label for the key")
    create.add_argument("--collections", type=lambda v: _names("collection", v), default=(),
                        help="collections it may read, the first is its default "
                        "(default: the service's default collection)")  # fmt: skip
    create.add_argument("--scopes", type=lambda v: _names("scope", v, SCOPES),
                        default=None, help=f"comma-separated, of {', '.join(SCOPES)} "
                        "(default: all but admin)")  # fmt: skip
    create.add_argument("--expires-in-days", type=_positive, default=None)
    _limit_flags(create)
    listing = commands.add_parser("list", help="keys, without secrets")
    listing.add_argument("--tenant", default=None)
    rotate = commands.add_parser("rotate", help="a new key like KEY_ID; the old one ends")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace-s", type=float, default=0.0,
                        help="seconds the old key keeps working (default: ends now)")  # fmt: skip
    revoke = commands.add_parser("revoke", help="end a key now")
    revoke.add_argument("key_id")
    limits = commands.add_parser("limits", help="set a tenant's own limits")
    limits.add_argument("--tenant", required=True, type=lambda v: _names("tenant", v)[0])
    _limit_flags(limits)
    return parser.parse_args(argv)


def open_store(settings: AuthSettings) -> KeyAdmin:
    """The store the settings name, for writing."""
    if settings.store == "redis":
        from ragcore.tenancy.redis_store import RedisKeyAdmin

        return RedisKeyAdmin(settings.redis_url)
    from ragcore.tenancy.sqlite_ledger import SqliteLedger

    return SqliteLedger(settings.state_dir / "tenants.db")


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(args.rpm, args.tokens_per_minute, args.tokens_per_day, args.max_streams)


def _issue(store: KeyAdmin, template: ApiKey | None, args: argparse.Namespace) -> str:
    """Store a new key (like `template` when rotating); return its secret."""
    secret, now = new_secret(), time.time()
    if template is None:
        expires = now + args.expires_in_days * 86400 if args.expires_in_days else None
        key = ApiKey(new_key_id(), hash_secret(secret), args.tenant, args.name,
                     args.scopes or DEFAULT_SCOPES,
                     args.collections, _limits(args), now, expires)  # fmt: skip
    else:
        old = template
        key = ApiKey(new_key_id(), hash_secret(secret), old.tenant, old.name, old.scopes,
                     old.collections, old.limits, now, old.expires_at)  # fmt: skip
    store.add_key(key)
    print(f"created {key.key_id} for tenant {key.tenant} (scopes {','.join(key.scopes)}); "
          "the key is shown once, below:", file=sys.stderr)  # fmt: skip
    return secret


def run(args: argparse.Namespace, store: KeyAdmin) -> int:
    """Carry out one command."""
    if args.command == "create":
        print(_issue(store, None, args))
    elif args.command == "list":
        for key in store.list_keys(args.tenant):
            state = "active" if key.active(time.time()) else "ended"
            print(json.dumps({**key.public(), "state": state}))
    elif args.command in ("rotate", "revoke"):
        found = store.get_key(args.key_id)
        if found is None or found.revoked_at is not None:
            print(f"error: no active key {args.key_id!r} (see `manage_keys.py list`)",
                  file=sys.stderr)  # fmt: skip
            return 2
        secret = _issue(store, found, args) if args.command == "rotate" else None
        ends = time.time() + (args.grace_s if args.command == "rotate" else 0.0)
        store.update_key(found.with_times(revoked_at=ends))
        print(f"{args.key_id} ends at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(ends))}",
              file=sys.stderr)  # fmt: skip
        if secret:
            print(secret)
    else:
        store.set_tenant_limits(args.tenant, _limits(args))
        print(f"limits of tenant {args.tenant}: {json.dumps(_limits(args).__dict__)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse, open the store, run; one error line and exit 2 on bad input."""
    args = parse_args(argv)
    try:
        store = open_store(rag_app_settings(args.config).auth)
    except (OSError, KeyError, StopIteration, yaml.YAMLError) as exc:
        print(f"error: cannot read the store from {args.config}: {exc}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"error: invalid setting {validation_line(exc)}", file=sys.stderr)
        return 2
    try:
        return run(args, store)
    except Exception as exc:  # the store went away mid-command (e.g. Redis down)
        print(f"error: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

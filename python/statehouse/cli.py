# SPDX-License-Identifier: MIT
"""python -m statehouse.cli: the Statehouse SDK's command-line entry point, on a mount.

The SDK's tutorials call it (`python3 -m statehouse.cli health` tells whether a daemon
answers before they start an agent), and its commands and options are the SDK's:
health, version, get, keys, replay, tail, dump and inspect, with --namespace after the
command. --address names the mount point here (the SDK took a daemon's host:port, which
is refused with a message saying so); without it, $STATEHOUSE_MOUNT, else the only
statehouse mount. statehousectl(1) is the full tool; this one needs only Python.

Exit status: 0 success, 1 failure (no mount, a missing key, an error of the mount), 2 a
usage error. Standard library only (argparse).
"""

import argparse
import base64
import json
import os
import sys
from typing import Any, Dict, List, Optional

from .client import Statehouse
from .exceptions import StatehouseError
from .formatting import format_value_summary
from .mounts import is_address

PROG = "python -m statehouse.cli"


class _Failed(Exception):
    """A failure already worded for the user: exit 1."""


def _json_value(value: Any) -> Dict[str, Any]:
    # Values a program other than this module wrote may be bytes, which JSON cannot hold.
    if isinstance(value, (bytes, bytearray)):
        return {"value_base64": base64.b64encode(value).decode("ascii")}
    return {"value": value}


def _dumps(obj: Any, indent: Optional[int] = None) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=indent)


def _client(args: argparse.Namespace) -> Statehouse:
    if args.address is not None and is_address(args.address):
        raise _Failed(
            f"--address '{args.address}' is a network address, but statehouse is reached "
            "through its mount: pass --address MOUNTPOINT (the MOUNTPOINT of 'statehoused "
            "DATADIR MOUNTPOINT'; 'statehousectl status' lists them), or set STATEHOUSE_MOUNT"
        )
    return Statehouse(url=args.address, namespace=args.namespace)


def cmd_health(args: argparse.Namespace) -> int:
    sh = _client(args)
    status = sh.health()
    if status != "ok":
        raise _Failed(f"statehouse mount '{sh.url}' is not healthy: {status}")
    print(f"ok: statehouse mount '{sh.url}' is healthy")
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    version, git_sha = _client(args).version()
    # Scripts of the SDK read these two lines ("Version: 0.1.0").
    print(f"Version: {version}")
    print(f"Git SHA: {git_sha if git_sha is not None else 'unknown'}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    state = _client(args).get_state(args.agent_id, args.key)
    if not state.exists:
        raise _Failed(f"no key '{args.key}' for agent '{args.agent_id}' in namespace '{args.namespace}'")
    if args.json_output:
        doc = {"key": args.key, "version": state.version, "commit_ts": state.commit_ts}
        doc.update(_json_value(state.value))
        print(_dumps(doc, indent=2))
        return 0
    print(f"{'key':<10} {args.key}")
    print(f"{'version':<10} {state.version}")
    print(f"{'commit_ts':<10} {state.commit_ts}")
    if args.pretty:
        print(f"{'value':<10} {format_value_summary(state.value, 200)}")
    elif isinstance(state.value, (bytes, bytearray)):
        print(f"\n<{len(state.value)} bytes, not UTF-8>")
    else:
        print("\n" + _dumps(state.value, indent=2))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    keys = _client(args).list_keys(args.agent_id)
    if args.prefix:
        keys = [k for k in keys if k.startswith(args.prefix)]
    print(f"keys of agent '{args.agent_id}' in namespace '{args.namespace}':")
    for key in keys:
        print(f"  - {key}")
    print(f"\nTotal: {len(keys)}")
    return 0


def _event_dict(event) -> Dict[str, Any]:
    doc = event.to_dict()
    for op, src in zip(doc["operations"], event.operations):
        if isinstance(src.value, (bytes, bytearray)):
            del op["value"]
            op.update(_json_value(src.value))
    return doc


def _replay_lines(args: argparse.Namespace) -> List[str]:
    """replay's output lines: one JSON document per commit with --json, else one pretty
    line per operation; --limit counts what is printed (as in the SDK's CLI)."""
    sh = _client(args)
    if args.json:
        events = sh.replay(args.agent_id, args.start_ts, args.end_ts)
        lines = (_dumps(_event_dict(ev)) for ev in events)
    else:
        lines = sh.replay_pretty(args.agent_id, args.start_ts, args.end_ts, verbose=args.verbose)
    out = []
    for line in lines:
        if args.limit is not None and len(out) >= args.limit:
            break
        out.append(line)
    return out


def cmd_replay(args: argparse.Namespace) -> int:
    lines = _replay_lines(args)
    for line in lines:
        print(line)
    if not lines:
        print(f"no events for agent '{args.agent_id}' in namespace '{args.namespace}'", file=sys.stderr)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    if args.follow:
        raise _Failed(
            "tail --follow is not offered here (nor was it by the SDK's CLI): "
            f"use 'statehousectl tail -f {args.agent_id}'"
        )
    lines = list(_client(args).replay_pretty(args.agent_id))
    for line in lines[len(lines) - args.lines :] if args.lines else []:
        print(line)
    if not lines:
        print(f"no events for agent '{args.agent_id}' in namespace '{args.namespace}'", file=sys.stderr)
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    sh = _client(args)
    state = {}
    for key in sh.list_keys(args.agent_id):
        s = sh.get_state(args.agent_id, key)
        if s.exists:  # deleted since the listing
            state[key] = dict(_json_value(s.value), version=s.version, commit_ts=s.commit_ts)
    if args.format == "json":
        text = _dumps(state, indent=2) + "\n"
    else:
        rows = [f"# {args.namespace}/{args.agent_id}: {len(state)} keys"]
        for key, s in state.items():
            shown = f"<base64 {s['value_base64']}>" if "value_base64" in s else _dumps(s["value"])
            rows.append(f"{key}\tv{s['version']}\t#{s['commit_ts']}\t{shown}")
        text = "\n".join(rows) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {len(state)} keys of agent '{args.agent_id}' to '{args.output}'")
    else:
        sys.stdout.write(text)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    sh = _client(args)
    keys = sh.list_keys(args.agent_id)
    events = list(sh.replay(args.agent_id))
    print(f"agent      {args.namespace}/{args.agent_id}")
    print(f"keys       {len(keys)}")
    for key in keys[:10]:
        print(f"  - {key}")
    if len(keys) > 10:
        print(f"  ... {len(keys) - 10} more")
    print(f"commits    {len(events)}")
    recent = list(sh.replay_pretty(args.agent_id))[-5:]
    if recent:
        print("recent operations:")
        for line in recent:
            print(f"  {line}")
    return 0


def _positive_or_zero(text: str) -> int:
    try:
        n = int(text, 10)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a non-negative integer")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="The Statehouse SDK's command line on a statehoused mount "
        "(statehousectl(1) does more).",
    )
    p.add_argument(
        "--address",
        "-m",
        "--mount",
        metavar="MOUNTPOINT",
        help="the statehouse mount (the SDK's daemon address; default: $STATEHOUSE_MOUNT, "
        "else the only statehouse mount)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, run, help_text: str, agent: bool = True) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_text, description=help_text)
        c.set_defaults(run=run)
        c.add_argument("--namespace", default="default", help="namespace (default: default)")
        if agent:
            c.add_argument("agent_id", metavar="AGENT_ID")
        return c

    command("health", cmd_health, "check that the mount's daemon answers", agent=False)
    command("version", cmd_version, "the daemon's version and git commit", agent=False)
    c = command("get", cmd_get, "a key's value, version and commit_ts")
    c.add_argument("key", metavar="KEY")
    c.add_argument("--json-output", "--json", action="store_true", help="one JSON object")
    c.add_argument("--pretty", action="store_true", help="a one-line summary of the value")
    c = command("keys", cmd_keys, "the agent's keys")
    c.add_argument("--prefix", help="only keys that begin with PREFIX")
    c = command("replay", cmd_replay, "the agent's operations, oldest first")
    c.add_argument("--start-ts", type=_positive_or_zero, help="from commit_ts START_TS on")
    c.add_argument("--end-ts", type=_positive_or_zero, help="up to commit_ts END_TS")
    c.add_argument("--limit", type=_positive_or_zero, help="at most LIMIT lines")
    c.add_argument("--verbose", action="store_true", help="transaction and whole values")
    c.add_argument("--json", action="store_true", help="one JSON document per commit")
    c = command("tail", cmd_tail, "the agent's last operations")
    c.add_argument("--lines", "-n", type=_positive_or_zero, default=10, help="how many (10)")
    c.add_argument("--follow", "-f", action="store_true", help="(use statehousectl tail -f)")
    c = command("dump", cmd_dump, "every key of the agent with its version and commit_ts")
    c.add_argument("--output", "-o", help="write FILE instead of standard output")
    c.add_argument("--format", choices=("json", "text"), default="json")
    command("inspect", cmd_inspect, "the agent at a glance: keys, commits, recent operations")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: a COMMAND is needed ({PROG} --help lists them)", file=sys.stderr)
        return 2
    try:
        rc = args.run(args)
        sys.stdout.flush()
        return rc
    except BrokenPipeError:
        # `... | head`: the reader left; nothing more to say (and nothing to flush at exit).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (StatehouseError, _Failed, ValueError, OSError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

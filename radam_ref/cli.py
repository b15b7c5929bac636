"""The ``radam-ref`` command line.

Each subcommand lives in its own module, which exposes ``register(subparsers)``:
it adds its parser and sets ``func`` (called with the parsed namespace, returning
the exit status).  Modules keep heavy imports inside ``func``, so ``radam-ref
--help`` stays fast and works with only the core installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser", "SUBCOMMAND_MODULES"]

#: Modules that register a subcommand, in the order ``--help`` lists them.
SUBCOMMAND_MODULES = (
    "radam_ref._demo",
    "radam_ref.conformance.cli",
    "radam_ref.conformance.vectors_cli",
    "radam_ref.backends.bench",
    "radam_ref.paper.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radam-ref",
        description="RAdam reference implementation: spec, backends, conformance suite.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"radam-ref {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
                continue  # that part of the project is not present
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

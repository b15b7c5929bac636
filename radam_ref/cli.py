"""The ``radam-ref`` command line.

Each subcommand lives in its own module, which exposes ``register(subparsers)``:
it adds its parser and sets ``func`` (called with the parsed namespace, returning
the exit status).  :data:`SUBCOMMANDS` names each one's module and the extra it
needs (``radam_ref._extras``).

``radam-ref --help`` works with the core install alone.  A subcommand whose extra
is missing is still listed; running it (or asking for its ``--help``) prints one
line naming the extra to install and exits with status 2.  So do a missing input
file or output directory.  Exit status 2 always means "usage": nothing ran.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NamedTuple

from ._extras import EXTRAS, MissingExtraError, missing_modules

__all__ = ["main", "build_parser", "SUBCOMMANDS", "Subcommand"]


class Subcommand(NamedTuple):
    name: str
    module: str    # exposes register(subparsers)
    extra: str     # the extra that installs what it needs
    modules: tuple = ()   # what it imports when run (default: everything of ``extra``)

    def needs(self) -> tuple:
        return self.modules or EXTRAS[self.extra]


#: The subcommands, in the order ``--help`` lists them.
SUBCOMMANDS = (
    Subcommand("demo", "radam_ref._demo", "cli", ("numpy",)),
    Subcommand("conformance", "radam_ref.conformance.cli", "cli"),
    Subcommand("replay", "radam_ref.conformance.replay_cli", "cli"),
    Subcommand("vectors", "radam_ref.conformance.vectors_cli", "cli"),
    Subcommand("bench", "radam_ref.backends.bench", "bench"),
    Subcommand("paper", "radam_ref.paper.cli", "paper"),
)

#: Errors of a path the user gave (an input that is missing, an output directory
#: that does not exist): reported in one line with exit status 2.
_PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
                FileExistsError)


def _missing_message(sub: Subcommand) -> str | None:
    missing = missing_modules(sub.needs())
    if not missing:
        return None
    return (f"radam-ref {sub.name} needs the {sub.extra!r} extra ({', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed): "
            f"pip install 'radam-ref[{sub.extra}]'")


def _build(subcommands=SUBCOMMANDS) -> tuple[argparse.ArgumentParser, dict]:
    """The parser, and ``{name: message}`` for the subcommands that cannot run."""
    parser = argparse.ArgumentParser(
        prog="radam-ref",
        description="RAdam reference implementation: spec, backends, conformance suite.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"radam-ref {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    unavailable = {}
    for sub in subcommands:
        message = _missing_message(sub)
        if message is None:
            try:
                module = importlib.import_module(sub.module)
            except MissingExtraError as exc:
                message = f"radam-ref {sub.name}: {exc}"
            else:
                module.register(subparsers)
                continue
        unavailable[sub.name] = message
        subparsers.add_parser(sub.name, add_help=False,
                              help=f"(not installed: pip install 'radam-ref[{sub.extra}]')")
    return parser, unavailable


def build_parser() -> argparse.ArgumentParser:
    """The ``radam-ref`` argument parser (every subcommand listed)."""
    return _build()[0]


def _command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (top-level options take no values)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _one_line(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, unavailable = _build()
    command = _command(argv)
    if command in unavailable:
        print(unavailable[command], file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MissingExtraError as exc:
        print(f"radam-ref {args.command}: {exc}", file=sys.stderr)
        return 2
    except _PATH_ERRORS as exc:
        print(f"radam-ref {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

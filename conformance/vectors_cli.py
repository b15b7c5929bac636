"""``radam-ref vectors``: golden test vectors for ports.

  generate [--out DIR] [--profile NAME ...]   write the vector files (default: the shipped ones)
  validate [PATH ...]                         schema + consistency + "the generator reproduces it"
  check TARGET [--kwargs JSON] [--profile NAME]   run a target on its profile's vectors

Exit status: 0 ok; 1 a file is invalid or a test fails; 2 usage error (an
unknown profile, a missing file or directory, bad JSON in --kwargs), one line,
or a target that broke (exited, hung, wrote garbage: "ERROR ...").
"""

from __future__ import annotations

import json
import os
import sys

__all__ = ["register", "run"]


def register(subparsers) -> None:
    import argparse

    parser = subparsers.add_parser("vectors", help="generate, validate or run the golden test vectors",
                                   description=__doc__.replace("``", ""),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="vectors_command", metavar="ACTION")
    gen = sub.add_parser("generate", help="write the vector files from the spec")
    gen.add_argument("--out", default=None, metavar="DIR", help="directory (default: the package's vectors/)")
    gen.add_argument("--profile", action="append", default=None, help="only this profile (repeatable)")
    val = sub.add_parser("validate", help="check vector files (schema, consistency, reproducibility)")
    val.add_argument("paths", nargs="*", metavar="PATH", help="files (default: every shipped file)")
    val.add_argument("--no-regenerate", action="store_true", help="skip the comparison with the generator")
    chk = sub.add_parser("check", help="run a target on the vectors of its profile")
    chk.add_argument("target", metavar="TARGET")
    chk.add_argument("--kwargs", default=None, metavar="JSON")
    chk.add_argument("--profile", default=None, help="vectors of this profile (default: the target's)")
    parser.set_defaults(func=run, vectors_parser=parser)


def _usage(message: str) -> int:
    print(f"radam-ref vectors: error: {message}", file=sys.stderr)
    return 2


def run(args) -> int:
    from radam_ref import PROFILES

    from . import vectors

    command = getattr(args, "vectors_command", None)
    if command is None:
        args.vectors_parser.print_help()
        return 2
    if command == "generate":
        for name in args.profile or ():
            if name not in PROFILES:
                return _usage(f"--profile: unknown profile {name!r} (known: {', '.join(PROFILES)})")
        if args.out is not None and not os.path.isdir(args.out):
            return _usage(f"--out: {args.out!r} is not an existing directory")
        try:
            paths = vectors.generate_all(args.out, args.profile)
        except OSError as exc:
            return _usage(f"--out: cannot write {exc.filename or args.out!r}: {exc.strerror or exc}")
        for path in paths:
            print(f"wrote {path}")
        return 0
    if command == "validate":
        paths = args.paths or [vectors.vector_path(p) for p in PROFILES]
        for path in paths:
            if not os.path.isfile(path):
                return _usage(f"{path!r} is not an existing file")
        bad = 0
        for path in paths:
            try:
                problems = vectors.validate_file(path, regenerate=not args.no_regenerate)
            except OSError as exc:
                return _usage(f"cannot read {path!r}: {exc.strerror or exc}")
            if problems:
                bad += 1
                print(f"INVALID {path}")
                for problem in problems:
                    print(f"  {problem}")
            else:
                print(f"ok      {path}")
        return 1 if bad else 0
    # check
    from .adapters.registry import TargetUnavailable, check_kwargs, resolve_target

    try:
        kwargs = json.loads(args.kwargs) if args.kwargs else {}
    except ValueError as exc:
        return _usage(f"--kwargs: invalid JSON {args.kwargs!r} ({exc})")
    if not isinstance(kwargs, dict):
        return _usage(f"--kwargs: expected a JSON object, got {args.kwargs!r}")
    problem = check_kwargs(kwargs)
    if problem:
        return _usage(problem)
    if args.profile is not None and args.profile not in PROFILES:
        return _usage(f"--profile: unknown profile {args.profile!r} (known: {', '.join(PROFILES)})")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # module:attr in the current directory, as `python -m` would find it
    try:
        target = resolve_target(args.target, kwargs, profile=args.profile)
    except TargetUnavailable as exc:
        return _usage(str(exc))
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = vectors.check_target(target)
        if hasattr(target, "shutdown"):  # a port: close it, checking its counts
            target.shutdown()
    except Exception as exc:  # noqa: BLE001 - a target that broke (a port that died or hung): exit 2
        if not getattr(exc, "target_fault", False):
            raise
        print(f"ERROR {target.describe()}: {exc}")
        return 2
    failed = [r for r in results if r.ok is False]
    skipped = [r for r in results if r.ok is None]
    for r in results:
        if r.ok is False:
            print(f"FAIL tcId {r.tc_id} ({r.result}): {r.message}")
    print(f"{target.describe()} on the {target.profile!r} vectors: {len(results) - len(failed) - len(skipped)} "
          f"passed, {len(failed)} failed, {len(skipped)} skipped (a dtype or option the target does not support)")
    return 1 if failed else 0

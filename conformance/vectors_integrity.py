"""Reading a golden-vector file strictly, and sealing it with digests of its content.

**Strict reading** (:func:`load_strict`).  A vector file is data a port trusts, so
the reader refuses what ``json.load`` would quietly accept or crash on: files over
:data:`MAX_BYTES`, nesting deeper than :data:`MAX_DEPTH` (checked on the text,
before parsing, so deep input is a clear error rather than a ``RecursionError``),
duplicate keys in an object (``json`` keeps the last), and non-standard numbers
(``NaN``, ``Infinity``).  Every refusal is a :class:`VectorFileError` (a
``ValueError``) with a one-line message.

**Integrity** (:func:`seal`, :func:`check_integrity`).  The generator adds an
``integrity`` object: ``digest``, the SHA-256 of the file's canonical content
(everything but ``integrity``, as JSON with sorted keys, no whitespace, UTF-8),
and ``fields``, one 8-hex-digit SHA-256 prefix per field, in the order of
:func:`field_paths` (objects by sorted key, arrays of objects by index; anything
else is a field).  Any edit changes the digest, and the per-field prefixes name
the field that changed (``$.testGroups[3].tests[0].tolerance``) without the
generator.  This detects edits, not forgery: anyone can recompute a digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

__all__ = ["MAX_BYTES", "MAX_DEPTH", "VectorFileError", "load_strict", "loads_strict", "canonical",
           "field_paths", "seal", "check_integrity"]

#: The largest vector file read (bytes); the shipped ones are about 0.1 MB.
MAX_BYTES = 8 * 1024 * 1024
#: The deepest nesting of arrays and objects read; the schema needs 6.
MAX_DEPTH = 16
_FIELD_HEX = 8


class VectorFileError(ValueError):
    """A vector file that cannot be read as one (too big, too deep, not JSON, duplicate keys)."""


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def _check_depth(text: str) -> None:
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_DEPTH:
            raise VectorFileError(f"nesting deeper than {MAX_DEPTH} levels (at character "
                                  f"{match.start()} after removing strings)")


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise VectorFileError(f"duplicate key {key!r} in one JSON object")
        out[key] = value
    return out


def _no_constant(name):
    raise VectorFileError(f"non-standard JSON number {name} (floats are float.hex strings)")


def loads_strict(text: str) -> dict:
    """Parse a vector file's text (see the module docstring)."""
    if len(text) > MAX_BYTES:
        raise VectorFileError(f"{len(text)} characters, more than the limit of {MAX_BYTES}")
    _check_depth(text)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except VectorFileError:
        raise
    except ValueError as exc:  # JSONDecodeError, and an integer too long to convert
        raise VectorFileError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise VectorFileError(f"the top level is a JSON {type(data).__name__}, not an object")
    return data


def load_strict(path: str) -> dict:
    """Read and parse a vector file.  ``OSError`` if it cannot be opened."""
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        raise VectorFileError(f"{size} bytes, more than the limit of {MAX_BYTES}")
    with open(path, encoding="utf-8") as fh:
        try:
            text = fh.read()
        except UnicodeDecodeError as exc:
            raise VectorFileError(f"not UTF-8 text: {exc}") from None
    return loads_strict(text)


def canonical(value) -> bytes:
    """JSON with sorted keys and no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def field_paths(data: dict) -> list:
    """``[(path, value)]`` of every field of ``data`` except ``integrity``, in canonical order."""
    out = []

    def walk(value, path):
        if isinstance(value, dict):
            for key in sorted(value):
                walk(value[key], f"{path}.{key}")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")
        else:
            out.append((path, value))

    walk({k: v for k, v in data.items() if k != "integrity"}, "$")
    return out


def _field_digest(value) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()[:_FIELD_HEX]


def seal(data: dict) -> dict:
    """``data`` with its ``integrity`` object (last key), replacing any old one."""
    body = {k: v for k, v in data.items() if k != "integrity"}
    body["integrity"] = {
        "algorithm": "sha256",
        "canonicalization": "the file without 'integrity', as JSON with sorted keys, separators ',' "
                            "and ':', no whitespace, UTF-8",
        "digest": hashlib.sha256(canonical({k: v for k, v in data.items() if k != "integrity"})).hexdigest(),
        "fields": [_field_digest(value) for _, value in field_paths(data)],
    }
    return body


def check_integrity(data: dict) -> list:
    """Problems: a missing seal, or every field whose content no longer matches it."""
    seal_ = data.get("integrity")
    if not isinstance(seal_, dict) or not isinstance(seal_.get("fields"), list):
        return ["integrity: missing (files are sealed by `radam-ref vectors generate`)"]
    body = {k: v for k, v in data.items() if k != "integrity"}
    fields = field_paths(data)
    if hashlib.sha256(canonical(body)).hexdigest() == seal_.get("digest"):
        # The content is intact; the seal itself must be too (it is not covered by the digest).
        expected = seal(data)["integrity"]
        edited = [key for key in ("canonicalization", "fields") if seal_.get(key) != expected[key]]
        return [f"edited after generation: integrity.{key} does not match the content" for key in edited]
    recorded = seal_["fields"]
    changed = [path for (path, value), want in zip(fields, recorded) if _field_digest(value) != want]
    problems = [f"edited after generation: {path} changed" for path in changed[:10]]
    if len(changed) > 10:
        problems.append(f"edited after generation: {len(changed) - 10} more fields changed")
    if len(fields) != len(recorded):
        problems.append(f"edited after generation: the file has {len(fields)} fields, "
                        f"the seal records {len(recorded)} (fields added or removed)")
    if not problems:
        problems.append("edited after generation: integrity.digest does not match the content")
    return problems

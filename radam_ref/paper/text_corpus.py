"""A character-level text corpus that ships with Python: the standard library's docstrings.

The paper's warmup experiment (§3, Figures 1–3) trains a Transformer on IWSLT'14
German–English; its language-modelling runs (§5.1) use One Billion Word.  Neither can be
downloaded here, so the Transformer experiment of ``radam-ref paper`` models English
prose that every Python installation carries: the docstrings of the top-level modules
of the standard library (module, class and function docstrings, in source order).
About 0.9 million characters of technical English on Python 3.11 — sentences,
parameter lists, inline code, examples — enough for a next-character model to keep
improving over a few thousand updates, which is what a training-loss curve needs.

Assembly is deterministic for a given Python version:

1. the ``*.py`` files directly in ``sysconfig.get_paths()["stdlib"]``, sorted by name;
2. each parsed with :mod:`ast` (nothing is imported); docstrings of the module, classes
   and functions in ``ast.walk`` order, cleaned by ``inspect.cleandoc``;
3. joined with blank lines; every character outside printable ASCII and newline
   becomes ``"?"``;
4. vocabulary: the sorted set of characters; the first 90 % of the text is the training
   split, the rest the validation split (a contiguous cut, so no validation sentence is
   seen in training).

The corpus depends on the Python version (the report states it); within one version
it is the same on every machine.
"""

from __future__ import annotations

import dataclasses
import functools

__all__ = ["TextCorpus", "load_corpus", "VALID_FRACTION"]

#: Share of the text (its end) held out for validation.
VALID_FRACTION = 0.1


@dataclasses.dataclass(frozen=True)
class TextCorpus:
    """Token ids of the two splits and the vocabulary.

    Attributes:
        vocabulary: the characters, index = token id.
        train, valid: 1-D ``torch.long`` tensors of token ids.
        documents: number of docstrings joined.
        files: number of source files read.
        python: the Python version whose standard library was read.
    """

    vocabulary: str
    train: object
    valid: object
    documents: int
    files: int
    python: str

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)


def _clean(char: str) -> str:
    return char if (" " <= char <= "~" or char == "\n") else "?"


@functools.lru_cache(maxsize=1)
def _docstrings() -> tuple:
    import ast
    import os
    import sysconfig

    root = sysconfig.get_paths()["stdlib"]
    names = sorted(name for name in os.listdir(root) if name.endswith(".py"))
    docs = []
    for name in names:
        with open(os.path.join(root, name), encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), filename=name)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    docs.append(doc)
    return tuple(docs), len(names)


@functools.lru_cache(maxsize=4)
def load_corpus(max_chars: int | None = None) -> TextCorpus:
    """The standard-library docstring corpus (see the module docstring).

    Cached: repeated calls return the same object (its tensors must not be modified).

    Args:
        max_chars: keep only the first ``max_chars`` characters of the joined text before
            splitting (``None``: all of it); at least 1000.

    Raises:
        ValueError: ``max_chars`` is not an integer >= 1000.
    """
    import platform

    import torch

    if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int)
                                  or max_chars < 1000):
        raise ValueError(f"max_chars must be None or an integer >= 1000, got {max_chars!r}")
    docs, files = _docstrings()
    text = "".join(_clean(c) for c in "\n\n".join(docs))
    if max_chars is not None:
        text = text[:max_chars]
    vocabulary = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(vocabulary)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = int(round(len(text) * (1.0 - VALID_FRACTION)))
    return TextCorpus(vocabulary=vocabulary, train=ids[:cut], valid=ids[cut:], documents=len(docs),
                      files=files, python=platform.python_version())

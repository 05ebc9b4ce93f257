"""The offline text corpus (SPEC §6): Debian's ``fortunes`` and WordNet example sentences.

Both install in seconds with ``apt-get install fortunes wordnet-base`` (the quick-start scripts do
it). Where neither is installed we fall back, and say so, to the docstrings of Python's standard
library's documentation (``pydoc_data``, the Python language reference): ~3k English sentences
that ship with every CPython, enough for a tokenizer and a tiny model, though drier.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
INSTALL_HINT = "apt-get install fortunes wordnet-base"
CORPUS_SOURCES = ("auto", "debian", "python")
_WORDNET_EXAMPLE = re.compile(r'"([^"]{12,200})"')
_SPACES = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def fortune_files(directory: Path = FORTUNES_DIR) -> list[Path]:
    """The fortune files, in name order: the .dat indexes and .u8 links skipped."""
    if not directory.is_dir():
        return []
    return [p for p in sorted(directory.iterdir()) if not p.suffix and p.is_file()]


def wordnet_data_files(directory: Path = WORDNET_DIR) -> list[Path]:
    """WordNet's data files whose glosses hold the example sentences, those installed."""
    paths = (directory / f"data.{part}" for part in ("noun", "verb", "adj", "adv"))
    return [p for p in paths if p.is_file()]


def fortunes(directory: Path = FORTUNES_DIR) -> list[str]:
    """Fortune cookies, attribution lines dropped, one string each."""
    entries: list[str] = []
    for path in fortune_files(directory):
        text = path.read_text(encoding="utf-8", errors="replace")
        for entry in text.split("\n%\n"):
            lines = [ln for ln in entry.splitlines() if not ln.strip().startswith("--")]
            cleaned = _clean(" ".join(lines))
            if 12 <= len(cleaned) <= 400:
                entries.append(cleaned)
    return entries


def wordnet_examples(directory: Path = WORDNET_DIR) -> list[str]:
    """The quoted example sentences of WordNet's glosses."""
    sentences: list[str] = []
    for path in wordnet_data_files(directory):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if "|" in line:
                gloss = line.split("|", 1)[1]
                sentences.extend(_clean(s) for s in _WORDNET_EXAMPLE.findall(gloss))
    return sentences


def python_reference() -> list[str]:
    """Sentences of the Python language reference that ships with CPython (``pydoc_data``)."""
    from pydoc_data.topics import topics

    text = _clean(" ".join(topics.values()))
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if 20 <= len(s) <= 300]


def debian_corpus_present(
    fortunes_dir: Path = FORTUNES_DIR, wordnet_dir: Path = WORDNET_DIR
) -> bool:
    """Whether any file ``fortunes`` or ``wordnet_examples`` reads is installed: "auto" then
    takes the Debian corpus (cheap: lists files, reads none)."""
    return bool(fortune_files(fortunes_dir) or wordnet_data_files(wordnet_dir))


def load_corpus(source: str = "auto") -> tuple[list[str], str]:
    """The training texts and the name of the source they came from.

    ``source``: "debian" (fortunes + WordNet; error if missing), "python" (the fallback) or
    "auto" (Debian's when installed, else the fallback with a warning).
    """
    if source not in CORPUS_SOURCES:
        raise ValueError(f"corpus source must be one of {CORPUS_SOURCES}, got {source!r}")
    if source in ("auto", "debian"):
        texts = fortunes() + wordnet_examples()
        if texts:
            return texts, "debian"
        if source == "debian":
            raise FileNotFoundError(
                f"the Debian corpus is not installed ({FORTUNES_DIR}, {WORDNET_DIR}); "
                f"install it with: {INSTALL_HINT}"
            )
        warnings.warn(
            f"fortunes/wordnet-base not installed ({INSTALL_HINT}); falling back to the "
            "Python language reference (pydoc_data) as the corpus",
            stacklevel=2,
        )
    return python_reference(), "python"

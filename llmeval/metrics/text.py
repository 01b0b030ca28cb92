"""Text helpers shared by the lexical metrics: references of a result, a Unicode-aware word
tokenizer for ROUGE, and a sentence splitter for rougeLsum."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

from llmeval.results.records import Result, Score

# Scripts written without spaces between words: each character (with its combining marks)
# is a token, the usual convention for character-level ROUGE on Chinese, Japanese and Thai.
_NO_SPACE = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}"
_TOKEN_PATTERN = rf"[{_NO_SPACE}]\p{{M}}*|[[\p{{L}}\p{{N}}\p{{M}}]--[{_NO_SPACE}]]+"
# ASCII text gives the same tokens with the stdlib's faster engine: for ASCII, letters, marks
# and digits are [a-z0-9] after lowercasing, and NFKC changes nothing.
_ASCII_TOKEN = re.compile(r"[a-z0-9]+")
# A sentence ends at . ! ? (and closing quotes or brackets) followed by whitespace, or at a
# full stop of a script that has its own (。！？ । ؟ ။ ።), which needs no space after it.
_SENTENCE_END = re.compile(r"([.!?][\"'”’)\]]*)\s+|([。！？｡।॥؟۔။።])\s*")


def references(sample: Result) -> list[str]:
    """The reference strings of a result (`expected` as a list; empty when there is none)."""
    exp = sample.expected
    if exp is None:
        return []
    if isinstance(exp, str):
        return [exp]
    return [str(e) for e in exp]


def reference_pairs(samples: list[Result], keys: list[str]
                    ) -> tuple[list[dict[str, Score]], list[int], list[tuple[str, list[str]]]]:
    """(scores, todo, pairs) for a reference metric: a sample without output or references gets
    its null `keys` scores now; the others are left empty, with their index in `todo` and their
    (output, references) in `pairs`, for the metric to fill."""
    out: list[dict[str, Score]] = []
    todo: list[int] = []
    pairs: list[tuple[str, list[str]]] = []
    for i, s in enumerate(samples):
        refs = references(s)
        if s.output is None or not refs:
            why = "no output (target error)" if s.output is None else "no expected answer"
            out.append({k: Score(None, None, why) for k in keys})
        else:
            out.append({})
            todo.append(i)
            pairs.append((s.output, refs))
    return out, todo, pairs


@lru_cache(maxsize=1)
def _token_re() -> Any:
    import regex  # a dependency of nltk and sacrebleu; stdlib `re` has no \p{...} classes

    return regex.compile(_TOKEN_PATTERN, regex.V1)


class UnicodeTokenizer:
    """Words of letters, marks and digits in any script (characters for CJK, Thai and other
    unspaced scripts), after NFKC and case folding; optional Porter stemming of ASCII words.

    rouge-score's own tokenizer keeps only [a-z0-9], so Chinese, Arabic or Hindi text has no
    tokens at all and accented words break apart; this one keeps them.
    """

    name = "unicode"

    def __init__(self, use_stemmer: bool = False) -> None:
        self.use_stemmer = use_stemmer
        self._stem = _porter_stem if use_stemmer else None

    def tokenize(self, text: str) -> list[str]:
        """Split `text` into tokens (the interface rouge-score's RougeScorer calls)."""
        if text.isascii():
            tokens = _ASCII_TOKEN.findall(text.lower())
        else:
            tokens = _token_re().findall(unicodedata.normalize("NFKC", text).casefold())
        if self._stem is not None:
            stem = self._stem
            # rouge-score's rule (stem words longer than three characters), for ASCII words only:
            # the Porter stemmer is for English.
            tokens = [stem(t) if len(t) > 3 and t.isascii() else t for t in tokens]
        return tokens


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    from nltk.stem import porter  # rouge-score uses nltk's Porter stemmer; so do we

    return porter.PorterStemmer()


@lru_cache(maxsize=2**16)
def _porter_stem(word: str) -> str:
    return str(_stemmer().stem(word))


def split_sentences(text: str) -> str:
    """One sentence per line, for rougeLsum: text that has newlines is kept as it is
    (rouge-score's convention); otherwise lines are broken after sentence-final punctuation."""
    if "\n" in text:
        return text
    return _SENTENCE_END.sub(lambda m: (m.group(1) or m.group(2)) + "\n", text.strip()).strip()

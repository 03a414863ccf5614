"""Word-deletion noise: the DAE input noise (phase 1) and the stop-word noise on resized copies (phase 2).

Both functions take a :class:`random.Random` so that callers control the stream: the same generator state always
gives the same output.
"""

from __future__ import annotations

import random
import string

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS as _SKLEARN_STOP_WORDS

from .errors import ThreePhaseError

#: English stop-words, scikit-learn's maintained list (the authors' list is not public).
ENGLISH_STOP_WORDS: frozenset[str] = frozenset(_SKLEARN_STOP_WORDS)


def delete_words(text: str, ratio: float, rng: random.Random) -> str:
    """Delete each word of ``text`` independently with probability ``ratio`` (the TSDAE noise).

    Args:
        text: The text; words are split on whitespace and the result is joined with single spaces.
        ratio: The deletion ratio, the expected *fraction of words deleted*, in [0, 1). Beware: the upstream TSDAE
            example uses a parameter of the same name as the probability of *keeping* a word.
        rng: The random generator to draw from.

    Returns:
        The kept words in their original order. At least one word is kept: when every word was drawn for
        deletion, one of them, chosen with ``rng``, survives. A text without words is returned unchanged.

    Raises:
        ThreePhaseError: If ``ratio`` is outside [0, 1).
    """
    if not 0.0 <= ratio < 1.0:
        raise ThreePhaseError(
            f"The deletion ratio ({ratio}) is outside [0, 1): pass the fraction of words to delete, "
            "e.g. 0.6 (the TSDAE default)."
        )
    words = text.split()
    if not words:
        return text
    kept = [word for word in words if rng.random() >= ratio]
    if not kept:
        kept = [rng.choice(words)]
    return " ".join(kept)


def _is_stop_word(word: str) -> bool:
    # "The," and "(of" are stop-words too: the list holds bare lower-case words.
    return word.strip(string.punctuation).lower() in ENGLISH_STOP_WORDS


def delete_stop_words(text: str, rng: random.Random, ratio: float = 0.5, min_words: int = 4) -> str:
    """Delete some stop-words from ``text``, so that a repeated example is close to its original but not identical.

    This is the noise put on the extra copies made by the imbalance correction. Stop-words are matched
    case-insensitively, ignoring surrounding punctuation, against :data:`ENGLISH_STOP_WORDS`.

    Args:
        text: The text; words are split on whitespace.
        rng: The random generator to draw from.
        ratio: The probability, in [0, 1], that each stop-word is deleted.
        min_words: Texts with fewer words than this are returned unchanged. At least 2, so that a word survives.

    Returns:
        ``text`` unchanged when it has fewer than ``min_words`` words or no stop-word. Otherwise the remaining
        words joined with single spaces: at least one stop-word is deleted (one chosen with ``rng`` when the draws
        delete none), and never every word (one chosen with ``rng`` is put back when they would all go).

    Raises:
        ThreePhaseError: If ``ratio`` is outside [0, 1] or ``min_words`` is below 2.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ThreePhaseError(
            f"The stop-word deletion ratio ({ratio}) is outside [0, 1]: pass a probability, e.g. 0.5."
        )
    if min_words < 2:
        raise ThreePhaseError(
            f"min_words ({min_words}) is below 2: pass min_words >= 2 so that a text never loses all its words."
        )
    words = text.split()
    stop_positions = [i for i, word in enumerate(words) if _is_stop_word(word)]
    if len(words) < min_words or not stop_positions:
        return text
    deleted = {i for i in stop_positions if rng.random() < ratio}
    if not deleted:
        deleted = {rng.choice(stop_positions)}
    if len(deleted) == len(words):
        deleted.discard(rng.choice(stop_positions))
    return " ".join(word for i, word in enumerate(words) if i not in deleted)

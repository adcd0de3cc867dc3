"""A suggested reason for an incoming message: multinomial naive Bayes over the words of past
contacts (their notes) and their reasons. Chosen because every suggestion can be explained in a line
("carte, perdue, opposition": the words that weighed most for that reason against the others) and it
trains in milliseconds on the few thousand contacts a desk logs. Free of I/O: the service hands it
the samples; ``evaluate`` measures accuracy on held-out samples against the majority-class baseline."""

from __future__ import annotations

import math
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from prevenance.common.stats import wilson_bounds

_WORD = re.compile(r"[a-z0-9]{3,}")
# Words that say nothing about a reason (French and English), left out of the model.
STOP_WORDS = frozenset(
    """
    the and for you your are with this that have has was were not but from our all can will would
    please thank thanks hello dear regards best sent from could should about there their they them
    les des une pour que qui pas est sur dans par vous votre vos nous avec mais bonjour merci
    cordialement madame monsieur cette ces son ses aux elle ils sont ete etre avoir fait tres plus
    """.split()  # noqa: SIM905 - a list of words reads best as words
)
MAX_CHARS = 4000  # of a message's text read by the classifier
MAX_WORDS = 200
MIN_SAMPLES = 10  # fewer and the model suggests nothing (the configured default reason is used)


def tokens(text: str) -> list[str]:
    """Lower-case words without accents, three letters or more, stop words left out."""
    plain = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    return [word for word in _WORD.findall(plain) if word not in STOP_WORDS]


@dataclass(frozen=True)
class Suggestion:
    """The reason suggested for a text, its posterior probability and the words that weighed most."""

    reason: str
    probability: float
    words: tuple[str, ...]


@dataclass(frozen=True)
class Model:
    """Per reason: its log prior and each known word's smoothed log likelihood (Laplace), computed
    once at training so a suggestion is only lookups and sums."""

    priors: dict[str, float]  # log prior per reason
    log_likelihoods: dict[str, dict[str, float]]  # reason -> word -> log P(word | reason)
    samples: int

    def suggest(self, text: str, *, explain: int = 3) -> Suggestion | None:
        """The most probable reason for ``text``; None when the text has no known word. Only the
        first ``MAX_WORDS`` words count (a long message says what it is about early)."""
        vocabulary = next(iter(self.log_likelihoods.values()), {})
        words = [word for word in tokens(text[:MAX_CHARS]) if word in vocabulary][:MAX_WORDS]
        if not words:
            return None
        scores = {
            reason: prior + sum(map(self.log_likelihoods[reason].__getitem__, words))
            for reason, prior in self.priors.items()
        }
        best = max(sorted(scores), key=lambda reason: scores[reason])
        top = scores[best]
        probability = 1.0 / sum(math.exp(score - top) for score in scores.values())
        others = [reason for reason in self.priors if reason != best]

        def weight(word: str) -> float:  # how much likelier under ``best`` than under the others, on average
            if not others:
                return 0.0
            mean = sum(self.log_likelihoods[reason][word] for reason in others) / len(others)
            return self.log_likelihoods[best][word] - mean

        ranked = sorted(set(words), key=lambda word: (-weight(word), word))
        return Suggestion(best, probability, tuple(word for word in ranked[:explain] if weight(word) > 0))


def train(samples: list[tuple[str, str]]) -> Model:
    """A model from (text, reason) samples."""
    counts: dict[str, Counter[str]] = {}
    per_reason: Counter[str] = Counter()
    for text, reason in samples:
        per_reason[reason] += 1
        counts.setdefault(reason, Counter()).update(tokens(text))
    n = sum(per_reason.values())
    vocabulary = sorted({word for counter in counts.values() for word in counter})
    log_likelihoods = {}
    for reason, counter in counts.items():
        denominator = math.log(sum(counter.values()) + len(vocabulary))
        log_likelihoods[reason] = {
            word: math.log(counter.get(word, 0) + 1) - denominator for word in vocabulary
        }
    return Model(
        priors={reason: math.log(count / n) for reason, count in per_reason.items()},
        log_likelihoods=log_likelihoods,
        samples=n,
    )


@dataclass(frozen=True)
class Evaluation:
    """Accuracy on held-out samples, with its Wilson 95% interval and the majority baseline."""

    trained_on: int
    held_out: int
    correct: int
    accuracy: float
    low: float
    high: float
    baseline_reason: str
    baseline_accuracy: float
    per_reason: dict[str, tuple[int, int]]  # reason → (correct, held out)


def evaluate(samples: list[tuple[str, str]], *, held_out: float = 0.2, seed: int = 7) -> Evaluation:
    """Train on a random ``1 - held_out`` of the samples and score the rest (the same seed, the same
    split). A text the model cannot read counts as wrong."""
    if len(samples) < MIN_SAMPLES:
        raise ValueError(f"need at least {MIN_SAMPLES} samples, got {len(samples)}")
    shuffled = list(samples)
    random.Random(seed).shuffle(shuffled)
    cut = max(1, round(len(shuffled) * held_out))
    test, training = shuffled[:cut], shuffled[cut:]
    model = train(training)
    majority = Counter(reason for _, reason in training).most_common(1)[0][0]
    correct = 0
    per_reason: dict[str, list[int]] = {}
    for text, reason in test:
        suggestion = model.suggest(text)
        hit = suggestion is not None and suggestion.reason == reason
        correct += hit
        tally = per_reason.setdefault(reason, [0, 0])
        tally[0] += hit
        tally[1] += 1
    low, high = wilson_bounds(correct, len(test))
    return Evaluation(
        trained_on=len(training),
        held_out=len(test),
        correct=correct,
        accuracy=correct / len(test),
        low=low,
        high=high,
        baseline_reason=majority,
        baseline_accuracy=sum(reason == majority for _, reason in test) / len(test),
        per_reason={reason: (c, n) for reason, (c, n) in sorted(per_reason.items())},
    )

"""Explanation generation (P5/VIP5's third task family) and its scoring.

The target is the **summary line** of an Amazon review (``summary``, ~4 words), written
by the user about the item; the prompt names the user and the item (id tokens).
:class:`ExplanationGenerator` trains the T5 foundation network on that; the baseline
:class:`NearestReview` returns the summary of the closest training review. Both are
scored with BLEU-4 (sacrebleu) and ROUGE-1/2/L F1 (rouge-score), on a 0-100 scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(eq=False)
class ReviewSplit:
    """Review rows ``user, item, summary`` for train, valid and test."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    dropped: int = 0


def split_reviews(reviews: pd.DataFrame, ratios=(0.8, 0.1, 0.1), *, seed: int = 0) -> ReviewSplit:
    """Random 8:1:1 split of reviews (P5's explanation split); valid/test rows whose user or
    item has no training review are dropped (counted in ``dropped``).

    Example:
        >>> frame = pd.DataFrame({"user": list("aabbcc") * 5, "item": list("xyxyxy") * 5, "summary": ["ok"] * 30})
        >>> split = split_reviews(frame, seed=0)
        >>> len(split.train) + len(split.valid) + len(split.test) + split.dropped
        30
    """
    missing = [c for c in ("user", "item", "summary") if c not in reviews.columns]
    if missing:
        raise KeyError(f"reviews need columns user, item, summary; missing {missing}")
    reviews = reviews[reviews["summary"].notna() & (reviews["summary"].astype(str).str.strip() != "")]
    order = np.random.default_rng(seed).permutation(len(reviews))
    cut_valid, cut_test = int(len(order) * ratios[0]), int(len(order) * (ratios[0] + ratios[1]))
    train = reviews.iloc[order[:cut_valid]].reset_index(drop=True)
    users, items = set(train["user"]), set(train["item"])
    parts, dropped = [], 0
    for rows in (order[cut_valid:cut_test], order[cut_test:]):
        part = reviews.iloc[rows]
        known = part["user"].isin(users) & part["item"].isin(items)
        dropped += int((~known).sum())
        parts.append(part[known].reset_index(drop=True))
    return ReviewSplit(train, parts[0], parts[1], dropped)


def score_explanations(generated: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU-4 (sacrebleu, lowercased) and mean ROUGE-1/2/L F1 (rouge-score, stemmed), 0-100.

    Case is ignored by both, since the trained tokenizer lowercases what it writes.

    Example:
        >>> score_explanations(["great strings"], ["great strings"])["rougeL"]
        100.0
    """
    import sacrebleu
    from rouge_score import rouge_scorer

    if len(generated) != len(references) or not references:
        raise ValueError(f"need one generated text per reference, got {len(generated)} and {len(references)}")
    bleu = sacrebleu.corpus_bleu(list(generated), [list(references)], lowercase=True).score
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hypothesis, reference in zip(generated, references):
        for name, value in scorer.score(reference, hypothesis).items():
            totals[name] += value.fmeasure
    return {"bleu4": float(bleu), **{name: 100.0 * total / len(references) for name, total in totals.items()}}


class NearestReview:
    """Retrieval baseline: the summary of the training review of the same item whose author
    is most similar to the user (Jaccard over reviewed items); else the user's latest
    summary; else the most common summary.

    Example:
        >>> train = pd.DataFrame({"user": ["a", "b", "b"], "item": ["x", "x", "y"], "summary": ["fine", "loud", "ok"]})
        >>> NearestReview().fit(train).predict(["c"], ["y"])
        ['ok']
    """

    def fit(self, train: pd.DataFrame) -> "NearestReview":
        self.items_of_user_ = train.groupby("user")["item"].agg(set).to_dict()
        self.reviews_of_item_ = {item: list(zip(rows["user"], rows["summary"])) for item, rows in train.groupby("item")}
        self.last_of_user_ = train.groupby("user")["summary"].last().to_dict()
        self.most_common_ = str(train["summary"].mode().iloc[0])
        return self

    def predict(self, users, items) -> list[str]:
        out = []
        for user, item in zip(users, items):
            mine = self.items_of_user_.get(user, set())
            candidates = self.reviews_of_item_.get(item, [])
            if candidates:
                def similarity(candidate):
                    theirs = self.items_of_user_.get(candidate[0], set())
                    return len(mine & theirs) / max(len(mine | theirs), 1)

                out.append(str(max(candidates, key=similarity)[1]))
            else:
                out.append(str(self.last_of_user_.get(user, self.most_common_)))
        return out

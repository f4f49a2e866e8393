"""Direct recommendation (VIP5's second task family): pick the user's item among candidates.

Training (``FoundationRecommender(direct_share=...)``): a share of the examples is phrased
with a direct template, the target among ``direct_candidates - 1`` random items. Evaluation
follows VIP5's protocol, **labelled sampled**: 1 positive (the test item) + 99 sampled
negatives (items the user never interacted with), each candidate scored by the exact
log-likelihood of its id tokens under the direct prompt. Full ranking of the sequential
task is the evaluator's job (``score``); this module never replaces it.
"""
from __future__ import annotations

import numpy as np
import torch

from prismrec.evaluation import metrics as metric_functions
from prismrec.foundation.prompts import render, template_named, templates


def direct_templates(*, held_out: bool = False) -> list:
    """Direct templates that list candidates (the yes/no one is not a ranking prompt)."""
    return [t for t in templates("direct", held_out=held_out) if "{candidates}" in t.source]


def training_candidates(target: int, n_items: int, n_candidates: int, rng: np.random.Generator) -> np.ndarray:
    """``target`` and ``n_candidates - 1`` other random items, shuffled.

    Example:
        >>> candidates = training_candidates(3, 10, 4, np.random.default_rng(0))
        >>> len(candidates), 3 in candidates.tolist(), len(set(candidates.tolist()))
        (4, True, 4)
    """
    others = rng.choice(n_items - 1, size=min(n_candidates - 1, n_items - 1), replace=False)
    others = others + (others >= target)  # skip the target itself
    return rng.permutation(np.concatenate([[target], others]))


def sampled_candidates(known, users: np.ndarray, n_items: int, n_negatives: int, seed: int = 0) -> np.ndarray:
    """``[len(users), 1 + n_negatives]``: column 0 is left for the positive (filled with -1 here),
    the others are distinct items outside ``known[user]`` (a CSR matrix of all the user's items)."""
    rng = np.random.default_rng(seed)
    out = np.full((len(users), 1 + n_negatives), -1, dtype=np.int64)
    for row, user in enumerate(users):
        allowed = np.setdiff1d(np.arange(n_items), known[user].indices, assume_unique=True)
        if len(allowed) < n_negatives:
            raise ValueError(f"user {user} has only {len(allowed)} unseen items, fewer than n_negatives={n_negatives}")
        out[row, 1:] = rng.choice(allowed, size=n_negatives, replace=False)
    return out


@torch.no_grad()
def candidate_scores(model, users: np.ndarray, candidates: np.ndarray, *, template: str = "direct-1",
                     seed: int = 0) -> torch.Tensor:
    """Log-likelihood ``[len(users), n_candidates]`` of each candidate's id tokens under the direct prompt.

    Candidates are listed in a random order (so that position cannot tell the positive),
    and scored by teacher forcing: exact, and every candidate is a valid item.
    """
    model._ensure_network()
    network, encoder = model._network, model._encoder
    text = template_named(template).source
    rng = np.random.default_rng(seed)
    device = next(network.parameters()).device
    out = torch.empty(candidates.shape, dtype=torch.float32)
    for row, (user, items) in enumerate(zip(users, candidates)):
        listed = items[rng.permutation(len(items))]
        batch = encoder.collate([encoder.source(render(text, user=model.raw_users_[user], candidates=listed))])
        encoded, mask = network.encode({k: v.to(device) for k, v in batch.items()})
        targets = [encoder.item_target(int(item)) for item in items]
        width = max(len(t) for t in targets)
        labels = torch.full((len(items), width), -100, dtype=torch.long)
        for k, target in enumerate(targets):
            labels[k, :len(target)] = torch.tensor(target)
        inputs = torch.cat([torch.zeros(len(items), 1, dtype=torch.long), labels[:, :-1].clamp(min=0)], dim=1)
        hidden = encoded.last_hidden_state.expand(len(items), -1, -1)
        log_probs = network.decoder_log_probs(type(encoded)(last_hidden_state=hidden), mask.expand(len(items), -1),
                                              inputs.to(device)).cpu()
        picked = log_probs.gather(2, labels.clamp(min=0)[:, :, None]).squeeze(2)
        out[row] = (picked * (labels >= 0)).sum(1)
    return out


def evaluate_direct(model, split, *, n_negatives: int = 99, ks=(1, 5, 10), template: str = "direct-1",
                    seed: int = 0) -> dict:
    """VIP5's direct protocol on the test items: 1 positive + ``n_negatives`` sampled negatives.

    Returns ``{"protocol", "summary": {"hit@k/sampledN": ..., "ndcg@k/sampledN": ...}, "users"}``.

    Example:
        >>> evaluate_direct(model, split, n_negatives=99)["summary"]["hit@10/sampled99"]  # doctest: +SKIP
        0.41
    """
    users = split.test.user_index
    known = (split.train.matrix + split.valid.matrix + split.test.matrix).tocsr()
    candidates = sampled_candidates(known, users, split.test.n_items, n_negatives, seed)
    candidates[:, 0] = split.test.item_index
    scores = candidate_scores(model, users, candidates, template=template, seed=seed)
    # rank with ties against the positive (a pessimistic tie-break: equal scores rank first)
    order = torch.argsort(-scores + 1e-6 * (torch.arange(scores.shape[1]) == 0), dim=1, stable=True)
    hits = order == 0
    n_relevant = torch.ones(len(users), dtype=torch.long)
    summary = {}
    for k in [k for k in ks if k <= 1 + n_negatives]:  # a cut-off beyond the candidates means nothing
        for name in ("hit", "ndcg"):
            values = metric_functions.METRICS[name](hits, n_relevant, k)
            summary[f"{name}@{k}/sampled{n_negatives}"] = float(values.mean())
    return {"protocol": f"sampled: 1 positive + {n_negatives} sampled negatives (VIP5's direct protocol)",
            "summary": summary, "users": users.tolist(), "template": template}

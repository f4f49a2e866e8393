"""SASRec: learns a deterministic next-item rule with both losses; leave-one-out histories."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from prismrec.data import IdMap, Interactions
from prismrec.data.splits import leave_one_out
from prismrec.evaluation.evaluator import Evaluator
from prismrec.models import SASRec

N_ITEMS = 20


def chains(n_users: int = 80, length: int = 8, seed: int = 0) -> Interactions:
    """User u walks the cycle start, start+1, ... (mod 20): the next item is always previous + 1."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        start = int(rng.integers(N_ITEMS))
        rows += [(f"u{user}", f"i{(start + t) % N_ITEMS}", t) for t in range(length)]
    frame = pd.DataFrame(rows, columns=["user", "item", "t"])
    return Interactions.from_frame(frame, time_col="t", items=IdMap([f"i{i}" for i in range(N_ITEMS)]))


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_sasrec_learns_the_next_item_rule(loss):
    split = leave_one_out(chains())
    model = SASRec(hidden_size=16, n_layers=1, max_length=8, dropout=0.0, loss=loss, epochs=60,
                   learning_rate=0.01, batch_size=16, patience=60).fit(split.train, split.valid)
    result = Evaluator(ks=(1,), metrics=("hit",)).evaluate(model, split.test, exclude=[split.train, split.valid])
    assert result["hit@1"] > 0.9  # the test item is the validation item + 1


def test_test_time_history_includes_the_validation_item():
    split = leave_one_out(chains(n_users=10))
    model = SASRec(hidden_size=8, n_layers=1, max_length=8, epochs=1).fit(split.train, split.valid)
    user = 0
    valid_item = split.valid.item_index[split.valid.user_index == user][0]
    assert model.history_of(user)[-1] == valid_item and len(model.history_of(user)) == 7
    model.use_history(split.train)
    assert len(model.history_of(user)) == 6 and model.history_of(user, max_length=2).shape == (2,)


def test_bad_loss_is_named():
    split = leave_one_out(chains(n_users=10))
    with pytest.raises(ValueError, match="SASRec loss must be 'ce' or 'bce', got 'mse'"):
        SASRec(loss="mse", epochs=1).fit(split.train)

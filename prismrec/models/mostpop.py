"""MostPopular: every user gets the items with the most training interactions."""
from __future__ import annotations

import numpy as np
import torch

from prismrec.models.base import Recommender


class MostPopular(Recommender):
    """Scores each item by its number of training interactions (the same for all users).

    Scores are the raw counts (float32, exact below 2**24), so equally popular items tie.

    Example:
        >>> import pandas as pd
        >>> from prismrec.data import Interactions
        >>> train = Interactions.from_frame(pd.DataFrame({"user": ["a", "b", "b"], "item": ["x", "y", "x"]}))
        >>> MostPopular().fit(train).recommend([0], k=2)[0].tolist()
        [[0, 1]]
    """

    def __init__(self) -> None:
        pass

    def _fit(self, train, valid, item_features, progress) -> None:
        self.item_popularity_ = torch.from_numpy(train.item_popularity().astype(np.float32))

    def score(self, user_ids) -> torch.Tensor:
        self._check_fitted()
        n_users = len(np.atleast_1d(np.asarray(user_ids)))
        return self.item_popularity_.float().unsqueeze(0).expand(n_users, -1).clone()

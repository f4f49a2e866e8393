"""SASRec (Kang & McAuley, ICDM 2018): self-attentive sequential recommendation.

A causal Transformer over the user's most recent ``max_length`` items; the hidden state
at each position predicts the next item by a dot product with the item embeddings.
Two losses: ``"bce"`` (the paper's: one sampled negative per position, binary
cross-entropy) and ``"ce"`` (softmax cross-entropy over all items, as in later work
that shows it trains SASRec better). Leave-one-out histories follow
:class:`prismrec.models.sequential.SequentialHistory`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from prismrec.data.sequences import user_sequences
from prismrec.models.base import Recommender
from prismrec.models.sequential import SequentialHistory, flatten_state, unflatten_state
from prismrec.models.training import train_epochs


class SASRecNetwork(nn.Module):
    """Item + position embeddings, ``n_layers`` causal pre-norm Transformer blocks.

    Item index ``i`` is embedding row ``i + 1``; row 0 is padding.

    Example:
        >>> network = SASRecNetwork(n_items=10, hidden_size=8, n_layers=1, n_heads=1, max_length=5, dropout=0.0)
        >>> network(torch.tensor([[0, 0, 3, 4, 5]])).shape
        torch.Size([1, 5, 8])
    """

    def __init__(self, n_items: int, hidden_size: int, n_layers: int, n_heads: int, max_length: int,
                 dropout: float) -> None:
        super().__init__()
        self.item_embedding = nn.Embedding(n_items + 1, hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(max_length, hidden_size)
        layer = nn.TransformerEncoderLayer(hidden_size, n_heads, dim_feedforward=hidden_size, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)
        nn.init.normal_(self.item_embedding.weight, std=hidden_size**-0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[B, T, d]`` of padded (0) sequences of embedding rows, most recent last."""
        length = sequences.shape[1]
        positions = torch.arange(length, device=sequences.device)
        hidden = self.item_embedding(sequences) * self.item_embedding.embedding_dim**0.5
        hidden = self.dropout(hidden + self.position_embedding(positions))
        padding = sequences == 0
        hidden = hidden * (~padding).unsqueeze(-1)
        hidden = self.blocks(hidden, mask=self._attention_mask(padding))
        return self.norm(hidden)

    def _attention_mask(self, padding: torch.Tensor) -> torch.Tensor:
        """``[B * heads, T, T]`` additive mask: no future, no padding keys; every position sees itself
        (so a padding query never has all keys masked, which would give NaN)."""
        length = padding.shape[1]
        future = torch.ones(length, length, dtype=torch.bool, device=padding.device).triu(1)
        blocked = future.unsqueeze(0) | padding.unsqueeze(1)
        blocked &= ~torch.eye(length, dtype=torch.bool, device=padding.device)
        additive = torch.zeros(blocked.shape, device=padding.device).masked_fill(blocked, float("-inf"))
        return additive.repeat_interleave(self.blocks.layers[0].self_attn.num_heads, dim=0)

    def item_weights(self) -> torch.Tensor:
        return self.item_embedding.weight[1:]


class SASRec(SequentialHistory, Recommender):
    """Self-attentive sequential recommender with ``loss="ce"`` or ``"bce"``.

    Example:
        >>> model = SASRec(hidden_size=64, epochs=50, loss="ce").fit(split.train, split.valid)  # doctest: +SKIP
        >>> model.score([0, 1]).shape  # doctest: +SKIP
        torch.Size([2, 12101])
    """

    def __init__(self, *, hidden_size: int = 64, n_layers: int = 2, n_heads: int = 1, max_length: int = 50,
                 dropout: float = 0.3, loss: str = "ce", epochs: int = 100, batch_size: int = 128,
                 learning_rate: float = 1e-3, patience: int = 5, early_stopping_metric: str = "ndcg@10",
                 eval_every: int = 1, seed: int = 0) -> None:
        self.hidden_size, self.n_layers, self.n_heads, self.max_length = hidden_size, n_layers, n_heads, max_length
        self.dropout, self.loss, self.epochs, self.batch_size = dropout, loss, epochs, batch_size
        self.learning_rate, self.patience, self.early_stopping_metric = learning_rate, patience, early_stopping_metric
        self.eval_every, self.seed = eval_every, seed

    def _network_shell(self) -> SASRecNetwork:
        return SASRecNetwork(self.n_items_, self.hidden_size, self.n_layers, self.n_heads, self.max_length,
                             self.dropout)

    def _fit(self, train, valid, item_features, progress) -> None:
        if self.loss not in ("ce", "bce"):
            raise ValueError(f"SASRec loss must be 'ce' or 'bce', got {self.loss!r}")
        sequences = [s for s in user_sequences(train) if len(s) >= 2]
        if not sequences:
            raise ValueError(f"{train.source}: SASRec needs users with at least 2 training interactions")
        inputs, targets = _shifted(sequences, self.max_length)
        self._network = self._network_shell()
        optimizer = torch.optim.Adam(self._network.parameters(), lr=self.learning_rate, betas=(0.9, 0.98))
        rng = np.random.default_rng(self.seed)
        self.use_history(train)

        def run_epoch(epoch: int) -> float:
            self._network.train()
            order = rng.permutation(len(inputs))
            total = 0.0
            for start in range(0, len(order), self.batch_size):
                rows = torch.from_numpy(order[start:start + self.batch_size])
                optimizer.zero_grad()
                loss = self._batch_loss(inputs[rows], targets[rows], rng)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(rows)
            self._network.eval()
            self._publish()
            return total / len(order)

        train_epochs(self, train, valid, run_epoch, epochs=self.epochs, metric=self.early_stopping_metric,
                     patience=self.patience, every=self.eval_every, progress=progress)
        unflatten_state(self._network, self.network_weights_, self.network_layout_)
        self.use_history(*[part for part in (train, valid) if part is not None])

    def _batch_loss(self, inputs: torch.Tensor, targets: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        hidden = self._network(inputs)
        valid = targets > 0
        hidden, positives = hidden[valid], targets[valid]
        weights = self._network.item_embedding.weight
        if self.loss == "ce":
            return nn.functional.cross_entropy(hidden @ weights[1:].T, positives - 1)
        # one uniform negative per position (may rarely equal a positive of the user, as in the paper)
        negatives = torch.from_numpy(rng.integers(1, self.n_items_ + 1, size=len(positives)))
        positive_logits = (hidden * weights[positives]).sum(-1)
        negative_logits = (hidden * weights[negatives]).sum(-1)
        return (nn.functional.softplus(-positive_logits) + nn.functional.softplus(negative_logits)).mean()

    def _publish(self) -> None:
        self.network_weights_, self.network_layout_ = flatten_state(self._network)

    @torch.no_grad()
    def score(self, user_ids) -> torch.Tensor:
        self._check_fitted()
        if getattr(self, "_network", None) is None:  # after load: rebuild from the published weights
            self._network = self._network_shell()
            unflatten_state(self._network, self.network_weights_, self.network_layout_)
        self._network.eval()
        histories = self.padded_histories(user_ids, self.max_length) + 1  # -1 padding -> row 0
        hidden = self._network(histories)[:, -1]
        return (hidden @ self._network.item_weights().T).float()


def _shifted(sequences: list[np.ndarray], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded inputs ``seq[:-1]`` and targets ``seq[1:]`` (embedding rows, 0 = padding).

    Sequences longer than ``max_length + 1`` keep their most recent part.
    """
    inputs = torch.zeros((len(sequences), max_length), dtype=torch.long)
    targets = torch.zeros((len(sequences), max_length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        sequence = torch.from_numpy(np.asarray(sequence[-(max_length + 1):], dtype=np.int64)) + 1
        n = len(sequence) - 1
        inputs[row, max_length - n:] = sequence[:-1]
        targets[row, max_length - n:] = sequence[1:]
    return inputs, targets

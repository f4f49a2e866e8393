"""MMGCL (Yi et al. 2022, "Multi-modal Graph Contrastive Learning for Micro-video Recommendation").

Backbone: one LightGCN block per view over the user-item graph, the ID view and one per
modality (a user embedding of that modality, the item's projected features); a node is
the concatenation of its blocks, and ``score = user · item``. Besides BPR, a contrastive
term compares two augmented views of the batch's users and items:

- *modality edge dropout*: every block gets its own copy of the graph with a share
  ``edge_dropout`` of the edges removed (redrawn every epoch);
- *modality masking*: one modality, drawn uniformly, has its item features replaced by
  random vectors.

The paper's *negative sampling* adds, for every anchor, a challenging negative: the
anchor's masked view with one block swapped for another node's, so that a view that
agrees on a single modality is not enough. MMRec has no MMGCL; the settings follow the
paper's reported ranges (τ 0.2, λ 0.1, edge dropout 0.2).
Never-seen items are scored from their content neighbours.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from prismrec.models.graph import normalized_bipartite_adjacency, propagated_rows, to_torch_sparse_csr
from prismrec.models.item_graph import uniform_edge_sample
from prismrec.models.itemknn_cbf import feature_name_list
from prismrec.models.module_training import bpr_loss, fit_module, xavier_table
from prismrec.models.multimodal_graph import MultimodalEmbeddingModel, neighbour_fill, prepare_content


def contrast_with_hard_negatives(first: torch.Tensor, second: torch.Tensor, hard: torch.Tensor,
                                 temperature: float) -> torch.Tensor:
    """InfoNCE of rows of ``first`` against all rows of ``second`` plus one extra negative each (``hard``)."""
    first, second, hard = (F.normalize(x, dim=1) for x in (first, second, hard))
    logits = torch.cat([first @ second.T, (first * hard).sum(1, keepdim=True)], dim=1) / temperature
    return F.cross_entropy(logits, torch.arange(len(first)))


class MMGCL(MultimodalEmbeddingModel):
    """MMGCL on any named modalities.

    Example:
        >>> model = MMGCL(feature_names=("image", "text")).fit(  # doctest: +SKIP
        ...     train, valid, item_features={"image": posters, "text": plots})
    """

    def __init__(self, *, feature_names: tuple[str, ...] = ("image", "text"), embedding_size: int = 64,
                 n_layers: int = 2, edge_dropout: float = 0.2, ssl_weight: float = 0.1, temperature: float = 0.2,
                 reg_weight: float = 1e-4, learning_rate: float = 1e-3, batch_size: int = 2048, epochs: int = 500,
                 early_stopping_metric: str = "ndcg@20", patience: int = 20, eval_every: int = 1, seed: int = 0,
                 knn_k: int = 10, graph_cache_dir: str | None = None) -> None:
        if not 0.0 <= edge_dropout < 1.0:
            raise ValueError(f"edge_dropout must be in [0, 1), got {edge_dropout}")
        self.feature_names = feature_name_list(feature_names, "MMGCL")
        self.embedding_size, self.n_layers, self.edge_dropout = embedding_size, n_layers, edge_dropout
        self.ssl_weight, self.temperature, self.reg_weight = ssl_weight, temperature, reg_weight
        self.learning_rate, self.batch_size, self.epochs = learning_rate, batch_size, epochs
        self.early_stopping_metric, self.patience, self.eval_every = early_stopping_metric, patience, eval_every
        self.seed, self.knn_k, self.graph_cache_dir = seed, knn_k, graph_cache_dir

    def _fit(self, train, valid, item_features, progress) -> None:
        arrays, seen = prepare_content(self, train, item_features)
        full = to_torch_sparse_csr(normalized_bipartite_adjacency(train.matrix))
        n_users, n_items, size = train.n_users, train.n_items, self.embedding_size
        n_blocks = len(self.feature_names) + 1
        network = torch.nn.Module()
        network.users = torch.nn.ParameterList(xavier_table(n_users, size) for _ in range(n_blocks))
        network.items = xavier_table(n_items, size)
        network.projections = torch.nn.ModuleList(torch.nn.Linear(arrays[name].shape[1], size)
                                                  for name in self.feature_names)
        item_seen = torch.from_numpy(seen.astype(np.float32)).unsqueeze(1)
        features = [torch.from_numpy(arrays[name]) for name in self.feature_names]
        rng, generator = np.random.default_rng(self.seed), torch.Generator().manual_seed(self.seed)
        dropped = {}

        def block_inputs(masked: int | None = None):
            inputs = [network.items * item_seen]  # never-seen items have no ID embedding
            for m, (projection, feature) in enumerate(zip(network.projections, features)):
                items = projection(feature)
                if m == masked:
                    items = torch.randn(items.shape, generator=generator) * items.detach().std()
                inputs.append(items)
            return [torch.cat([user, items]) for user, items in zip(network.users, inputs)]

        def rows_of(graphs, inputs, nodes):
            unique, position = torch.unique(nodes, return_inverse=True)
            blocks = [propagated_rows(graph, x, unique, self.n_layers) for graph, x in zip(graphs, inputs)]
            return torch.cat(blocks, dim=1).index_select(0, position)

        def before_epoch(epoch: int) -> None:  # modality edge dropout: one graph per block
            dropped["graphs"] = [to_torch_sparse_csr(normalized_bipartite_adjacency(
                uniform_edge_sample(train.matrix, 1.0 - self.edge_dropout, rng)))
                for _ in range(n_blocks)] if self.edge_dropout > 0 else [full] * n_blocks

        def batch_loss(users, positives, negatives) -> torch.Tensor:
            nodes = torch.cat([users, positives + n_users, negatives + n_users])
            main = rows_of([full] * n_blocks, block_inputs(), nodes).view(3, len(users), -1)
            anchors = torch.cat([users, positives + n_users])
            first = rows_of(dropped["graphs"], block_inputs(), anchors)
            masked = int(rng.integers(1, n_blocks)) - 1
            second = rows_of([full] * n_blocks, block_inputs(masked), anchors)
            hard = _swap_one_block(second, n_blocks, rng)
            half = len(users)
            contrast = (contrast_with_hard_negatives(first[:half], second[:half], hard[:half], self.temperature)
                        + contrast_with_hard_negatives(first[half:], second[half:], hard[half:], self.temperature))
            penalty = sum(part.pow(2).sum() for part in main) / (2 * len(users))
            return bpr_loss(*main) + self.ssl_weight * contrast + self.reg_weight * penalty

        fill_unseen = neighbour_fill(arrays, seen, self.knn_k, self.graph_cache_dir)

        def publish() -> None:
            table = rows_of([full] * n_blocks, block_inputs(), torch.arange(n_users + n_items))
            self.user_embeddings_, self.item_embeddings_ = table[:n_users].clone(), fill_unseen(table[n_users:].clone())

        fit_module(self, network, train, valid, batch_loss=batch_loss, publish=publish, progress=progress,
                   before_epoch=before_epoch)


def _swap_one_block(rows: torch.Tensor, n_blocks: int, rng: np.random.Generator) -> torch.Tensor:
    """``rows`` with one random block (of ``n_blocks`` equal column blocks) taken from another random row."""
    size = rows.shape[1] // n_blocks
    block = int(rng.integers(n_blocks))
    donors = torch.from_numpy((np.arange(len(rows)) + rng.integers(1, max(len(rows), 2), len(rows))) % len(rows))
    swapped = rows.clone()
    swapped[:, block * size:(block + 1) * size] = rows[donors, block * size:(block + 1) * size]
    return swapped

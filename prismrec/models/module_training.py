"""Training pieces shared by the models whose trainable part is a ``torch.nn.Module``.

:func:`fit_module` runs the epochs (``torch.optim.Adam`` over the module's parameters,
triplets from :class:`TripletSampler`, batches from :func:`fitted_batch_size`, early
stopping from :func:`train_epochs`). :class:`FixedGraph` is a constant sparse matrix that
takes part in autograd: the product's backward multiplies by the stored transpose, with
the same compiled kernel as LightGCN's propagation.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
import torch

from prismrec.models.graph import csr_matmul
from prismrec.models.training import TripletSampler, fitted_batch_size, minibatch_epoch, train_epochs


class FixedGraph:
    """A constant float32 CSR matrix and its transpose, for differentiable products.

    Example:
        >>> import scipy.sparse as sp, torch
        >>> graph = FixedGraph(sp.csr_matrix([[0.0, 2.0], [0.0, 0.0]]))
        >>> x = torch.ones(2, 1, requires_grad=True)
        >>> graph.matmul(x).sum().backward(); x.grad.ravel().tolist()
        [0.0, 2.0]
    """

    def __init__(self, matrix: sp.spmatrix) -> None:
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32)
        self.matrix.sort_indices()
        self.transposed = self.matrix.T.tocsr()
        self.transposed.sort_indices()
        self.shape = self.matrix.shape

    def matmul(self, dense: torch.Tensor) -> torch.Tensor:
        """``matrix @ dense``, differentiable in ``dense``."""
        return _FixedGraphProduct.apply(dense, self)

    def propagate(self, dense: torch.Tensor, n_layers: int) -> torch.Tensor:
        """``matrix^n_layers @ dense`` (the last layer, as FREEDOM and LATTICE use it)."""
        for _ in range(n_layers):
            dense = self.matmul(dense)
        return dense


class _FixedGraphProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dense, graph):
        ctx.graph = graph
        return torch.from_numpy(csr_matmul(graph.matrix, dense.detach().numpy()))

    @staticmethod
    def backward(ctx, grad_output):
        return torch.from_numpy(csr_matmul(ctx.graph.transposed, grad_output.contiguous().numpy())), None


def xavier_table(n_rows: int, n_columns: int) -> torch.nn.Parameter:
    """An embedding table with Xavier-uniform initialisation (MMRec's and the papers' choice)."""
    table = torch.empty(n_rows, n_columns)
    torch.nn.init.xavier_uniform_(table)
    return torch.nn.Parameter(table)


def xavier_normal_table(*shape: int) -> torch.nn.Parameter:
    """A parameter with Xavier-normal initialisation (MMGCN's and GRCN's choice)."""
    return torch.nn.Parameter(torch.nn.init.xavier_normal_(torch.empty(*shape)))


def bpr_loss(users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Mean ``-ln σ(u·i - u·j)`` over the rows."""
    return -torch.nn.functional.logsigmoid((users * (positives - negatives)).sum(1)).mean()


def projected_bpr_loss(users: torch.Tensor, projection: torch.nn.Linear, positive_features: torch.Tensor,
                       negative_features: torch.Tensor) -> torch.Tensor:
    """``bpr_loss(users, projection(f_i), projection(f_j))`` with one matrix product instead of two:
    ``W f_i + b - (W f_j + b) = W (f_i - f_j)`` (the bias cancels, and so does its gradient).

    Example:
        >>> import torch
        >>> projection = torch.nn.Linear(3, 2)
        >>> u, fi, fj = torch.ones(4, 2), torch.rand(4, 3), torch.rand(4, 3)
        >>> direct = bpr_loss(u, projection(fi), projection(fj))
        >>> bool(torch.isclose(projected_bpr_loss(u, projection, fi, fj), direct, atol=1e-6))
        True
    """
    difference = torch.nn.functional.linear(positive_features - negative_features, projection.weight)
    return -torch.nn.functional.logsigmoid((users * difference).sum(1)).mean()


#: graphs with fewer nodes (users + items) than this train on one thread (see :func:`threads_for`)
SMALL_GRAPH_NODES = 10_000


@contextmanager
def threads_for(n_nodes: int):
    """Use one torch thread while training a graph smaller than :data:`SMALL_GRAPH_NODES`,
    then restore the previous count.

    Each operation on such a graph is too small to split: waking a second thread costs
    more than it saves, and on a busy machine a spinning pool makes tiny kernels 100x
    slower (measured: a 40-item model trains 3x faster on one thread under load 4).

    Example:
        >>> import torch
        >>> with threads_for(100):
        ...     torch.get_num_threads()
        1
    """
    previous = torch.get_num_threads()
    if n_nodes < SMALL_GRAPH_NODES and previous > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def fit_module(model, module: torch.nn.Module, train, valid, *, batch_loss: Callable, publish: Callable,
               progress: bool = False, before_epoch: Callable | None = None, weight_decay: float = 0.0) -> None:
    """Train ``module`` with Adam on BPR triplets and early stopping.

    ``batch_loss(users, positives, negatives) -> loss`` is differentiated;
    ``before_epoch(epoch)`` runs first in each epoch (edge dropout, graph rebuilding);
    ``publish()`` stores the scoring tensors (attributes ending in ``_``) after each epoch.
    ``model`` provides ``learning_rate``, ``batch_size``, ``epochs``, ``seed``,
    ``early_stopping_metric``, ``patience`` and ``eval_every``.

    Example:
        >>> fit_module(self, network, train, valid, batch_loss=loss, publish=publish)  # doctest: +SKIP
    """
    optimizer = torch.optim.Adam(module.parameters(), lr=model.learning_rate, weight_decay=weight_decay)
    sampler = TripletSampler(train, seed=model.seed)
    batch_size = fitted_batch_size(model, model.batch_size, len(train))

    def run_epoch(epoch: int) -> float:
        module.train()
        if before_epoch is not None:
            before_epoch(epoch)
        users, positives, negatives = (torch.from_numpy(a) for a in sampler.sample(len(train)))
        loss = minibatch_epoch(optimizer, batch_loss, users, positives, negatives, batch_size)
        module.eval()
        with torch.no_grad():
            publish()
        return loss

    with threads_for(train.n_users + train.n_items):
        train_epochs(model, train, valid, run_epoch, epochs=model.epochs, metric=model.early_stopping_metric,
                     patience=model.patience, every=model.eval_every, progress=progress)

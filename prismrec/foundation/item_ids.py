"""Item indexing: every item becomes a short, unique sequence of id tokens.

Four schemes (see :func:`build_item_index`):

- ``random``: a random permutation, written in base ``base`` with one token per digit;
- ``sequential``: P5's scheme, items numbered by first appearance along the user
  sequences. It is **leaky** (the test item is often ``max(history) + 1``) and kept only
  to show the leak; :attr:`ItemIndex.leaky` is True and reports label it so;
- ``collaborative``: hierarchical spectral clustering of the item co-occurrence graph
  (as OpenP5): the path of cluster numbers, then the position inside the leaf cluster;
- ``semantic``: TIGER-style residual quantisation (k-means per level) of content
  embeddings, plus one token that tells apart items with the same codes.

Codes are stored as an int array ``[n_items, max_length]`` padded with -1; the token of
code ``c`` at depth ``d`` is ``<d_c>`` (``d`` as a letter, ``<a_12>``), so depths never
share tokens and the decoder target ``codes + </s>`` is prefix-free.
"""
from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from prismrec.foundation.clustering import kmeans, spectral_partition

SCHEMES = ("random", "sequential", "collaborative", "semantic")
LEAKY_SCHEMES = frozenset({"sequential"})


@dataclass(eq=False)
class ItemIndex:
    """Id tokens of every item under one scheme.

    Example:
        >>> index = random_ids(5, base=4, seed=0)
        >>> len(index.tokens_of(0)), index.leaky
        (2, False)
    """

    scheme: str
    codes: np.ndarray  # int64 [n_items, max_length], -1 = no token at this depth

    def __post_init__(self) -> None:
        self.codes = np.asarray(self.codes, dtype=np.int64)
        keys = {tuple(row[row >= 0]) for row in self.codes}
        if len(keys) != len(self.codes):
            raise ValueError(f"{self.scheme} ids are not unique: {len(self.codes) - len(keys)} items share codes")

    @property
    def leaky(self) -> bool:
        return self.scheme in LEAKY_SCHEMES

    @property
    def label(self) -> str:
        """The scheme's name for reports, with the leak stated."""
        return f"{self.scheme} ids (LEAKY: P5 numbering)" if self.leaky else f"{self.scheme} ids"

    @property
    def n_items(self) -> int:
        return len(self.codes)

    def tokens_of(self, item: int) -> list[str]:
        """Id tokens of item index ``item``, e.g. ``['<a_3>', '<b_0>']``."""
        row = self.codes[item]
        return [token_name(depth, code) for depth, code in enumerate(row) if code >= 0]

    def vocabulary(self) -> list[str]:
        """Every id token used by some item, depth by depth."""
        names = []
        for depth in range(self.codes.shape[1]):
            used = np.unique(self.codes[:, depth])
            names += [token_name(depth, code) for code in used if code >= 0]
        return names

    def fingerprint(self) -> str:
        """Hash of scheme and codes: a checkpoint from another id scheme is refused by it."""
        digest = hashlib.sha256(self.scheme.encode() + self.codes.tobytes()).hexdigest()
        return digest[:16]

    def to_json(self) -> dict:
        return {"scheme": self.scheme, "codes": self.codes.tolist()}

    @classmethod
    def from_json(cls, data: dict) -> "ItemIndex":
        return cls(data["scheme"], np.asarray(data["codes"], dtype=np.int64))


def token_name(depth: int, code: int) -> str:
    """``<a_12>`` for code 12 at depth 0."""
    if depth >= len(string.ascii_lowercase):
        raise ValueError(f"item ids deeper than {len(string.ascii_lowercase)} tokens are not supported")
    return f"<{string.ascii_lowercase[depth]}_{int(code)}>"


def digits(numbers: np.ndarray, base: int) -> np.ndarray:
    """Base-``base`` digits of ``numbers`` (most significant first), fixed width.

    Example:
        >>> digits(np.array([0, 5, 7]), 4).tolist()
        [[0, 0], [1, 1], [1, 3]]
    """
    if base < 2:
        raise ValueError(f"base must be at least 2, got {base}")
    numbers = np.asarray(numbers, dtype=np.int64)
    width = 1
    while base**width <= max(int(numbers.max(initial=0)), 1):
        width += 1
    powers = base ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (numbers[:, None] // powers[None, :]) % base


def random_ids(n_items: int, *, base: int = 64, seed: int = 0) -> ItemIndex:
    """Each item gets a random number in ``0..n_items-1``, written in base ``base``."""
    numbers = np.random.default_rng(seed).permutation(n_items)
    return ItemIndex("random", digits(numbers, base))


def sequential_ids(sequences: list[np.ndarray], n_items: int, *, base: int = 64) -> ItemIndex:
    """P5's numbering (LEAKY): items in order of first appearance along the user sequences.

    Items in no sequence are numbered after the others, in index order.
    """
    order = [int(item) for sequence in sequences for item in sequence]
    seen = dict.fromkeys(order)
    first_seen = list(seen) + [item for item in range(n_items) if item not in seen]
    numbers = np.empty(n_items, dtype=np.int64)
    numbers[np.asarray(first_seen, dtype=np.int64)] = np.arange(n_items)
    return ItemIndex("sequential", digits(numbers, base))


def co_occurrence(sequences: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Item-item counts of users who have both items (diagonal zero), from training sequences."""
    rows = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    cols = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if sequences else np.empty(0, int)
    users_items = sp.csr_matrix((np.ones(len(cols), dtype=np.float64), (rows, cols)), shape=(len(sequences), n_items))
    users_items.data[:] = 1.0
    graph = (users_items.T @ users_items).tocsr()
    graph.setdiag(0)
    graph.eliminate_zeros()
    return graph


def collaborative_ids(graph: sp.spmatrix, *, n_clusters: int = 32, leaf_size: int = 64, seed: int = 0) -> ItemIndex:
    """OpenP5's collaborative indexing: recursive spectral clustering of the co-occurrence graph.

    A group larger than ``leaf_size`` is split into ``n_clusters`` spectral clusters, each
    cluster recursively; an item's id is its path of cluster numbers, then its position
    in its leaf group. Items that co-occur share id prefixes.
    """
    graph = sp.csr_matrix(graph, dtype=np.float64)
    n_items = graph.shape[0]
    paths: list[list[int]] = [[] for _ in range(n_items)]
    stack = [np.arange(n_items)]
    rng = np.random.default_rng(seed)
    while stack:
        group = stack.pop()
        if len(group) <= leaf_size:
            for position, item in enumerate(group):
                paths[item].append(position)
            continue
        labels = spectral_partition(graph[group][:, group], min(n_clusters, len(group)), rng)
        for cluster in np.unique(labels):
            members = group[labels == cluster]
            for item in members:
                paths[item].append(int(cluster))
            stack.append(members)
    return ItemIndex("collaborative", _pad(paths))


def semantic_ids(embeddings: np.ndarray, *, levels: int = 3, codebook_size: int = 256, seed: int = 0) -> ItemIndex:
    """TIGER-style residual quantisation: k-means on the embeddings, then on the residuals.

    After ``levels`` codes, items with identical codes get a last token 0, 1, ... that
    tells them apart (TIGER); that token is 0 for every item when no codes collide.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or not np.isfinite(embeddings).all():
        raise ValueError(f"semantic ids need finite content embeddings [n_items, d], got shape {embeddings.shape}")
    scale = embeddings.std(0).mean() or 1.0
    residual = (embeddings - embeddings.mean(0)) / scale
    rng = np.random.default_rng(seed)
    codes = np.empty((len(embeddings), levels + 1), dtype=np.int64)
    for level in range(levels):
        centroids, labels = kmeans(residual, min(codebook_size, len(embeddings)), rng)
        codes[:, level] = labels
        residual = residual - centroids[labels]
    _, inverse = np.unique(codes[:, :levels], axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(inverse[order])) + 1]
    rank_in_group = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    codes[order, levels] = rank_in_group
    return ItemIndex("semantic", codes)


def _pad(paths: list[list[int]]) -> np.ndarray:
    width = max(len(p) for p in paths) if paths else 1
    codes = np.full((len(paths), width), -1, dtype=np.int64)
    for item, path in enumerate(paths):
        codes[item, : len(path)] = path
    return codes


def build_item_index(scheme: str, *, n_items: int, sequences: list[np.ndarray] | None = None,
                     embeddings: np.ndarray | None = None, seed: int = 0, base: int = 64,
                     n_clusters: int = 32, leaf_size: int = 64, levels: int = 3,
                     codebook_size: int = 256) -> ItemIndex:
    """Build ids by scheme name; ``sequences`` (item indices per user, in time order, from
    training data only) feed ``sequential``/``collaborative``, ``embeddings`` feed ``semantic``.

    Example:
        >>> build_item_index("random", n_items=3, base=2).codes.shape
        (3, 2)
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown item id scheme {scheme!r}; choose one of {list(SCHEMES)}")
    if scheme == "random":
        return random_ids(n_items, base=base, seed=seed)
    if scheme == "semantic":
        if embeddings is None or len(embeddings) != n_items:
            found = "none" if embeddings is None else f"{len(embeddings)} rows"
            raise ValueError(f"semantic ids need content embeddings for all {n_items} items, got {found}")
        return semantic_ids(embeddings, levels=levels, codebook_size=codebook_size, seed=seed)
    if sequences is None:
        raise ValueError(f"{scheme} ids need the users' training sequences")
    if scheme == "sequential":
        return sequential_ids(sequences, n_items, base=base)
    graph = co_occurrence(sequences, n_items)
    return collaborative_ids(graph, n_clusters=n_clusters, leaf_size=leaf_size, seed=seed)

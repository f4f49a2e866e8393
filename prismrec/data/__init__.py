"""Data: interactions, item catalogs, splits and loaders."""
from prismrec.data.catalog import Dataset, ItemCatalog
from prismrec.data.interactions import IdMap, Interactions
from prismrec.data.splits import Split, make_split

__all__ = ["IdMap", "Interactions", "ItemCatalog", "Dataset", "Split", "make_split"]

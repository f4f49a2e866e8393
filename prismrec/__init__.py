"""PrismRec."""

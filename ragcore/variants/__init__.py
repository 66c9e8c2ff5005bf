"""Variants: sticky weighted routing, canary verdicts and shadow comparisons (Ray-free)."""

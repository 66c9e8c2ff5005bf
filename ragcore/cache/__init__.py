"""The answer cache: an exact tier and a semantic tier with a near-miss guard (Ray-free)."""

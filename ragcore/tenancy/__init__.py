"""Tenants: API keys, limits shared across replicas, usage accounting. Free of Ray and HTTP:
the stores are behind Protocols (stores.py) with an embedded and a Redis implementation."""

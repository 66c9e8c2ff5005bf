"""User feedback on answers and the human-review queue, free of Ray and of HTTP."""

"""Guards: prompt-injection and jailbreak detection, PII redaction, leak checks. Ray-free and
offline: patterns, and a small trained head on the MiniLM encoder the service already loads."""

"""The HTTP data API: OAuth 2 tokens for machines, sandbox queries, metered usage (art. 8, 22, 23)."""

"""Shuyun's application layer: services, access control, adapters and entry points."""

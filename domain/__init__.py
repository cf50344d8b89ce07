"""Shuyun's domain: event-sourced aggregates and the rules of the Baotou measures.

Pure by design: this package imports nothing of ours outside itself and no framework
but ``eventsourcing.domain``, so every rule can be tested without I/O and every state
change is an event that the store keeps for the twenty years art. 18 asks for.
"""

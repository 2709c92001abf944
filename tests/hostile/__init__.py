"""Attacker and careless-user cases, fuzzing (SECURITY.md)."""

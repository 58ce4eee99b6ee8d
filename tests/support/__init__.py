"""Helpers shared by the test tiers (imported as `support.…`; pytest puts tests/ on the path)."""

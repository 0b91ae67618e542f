"""Tessera off-chain agents."""

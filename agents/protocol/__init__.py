"""Pure protocol logic (no I/O): round phases, votes, share arithmetic."""

"""Protocol roles: provider, validator, owner and inference gateway.

Each role is a thin loop over `agents.chain`, `agents.storage` and
`agents.training`; decisions that need no I/O live in `agents.protocol`.
"""

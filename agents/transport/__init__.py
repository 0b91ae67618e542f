"""The stage-to-stage transport: how providers of adjacent stages (and the gateway) talk.

No Ray connection ever spans two operators, so payloads cross operator
boundaries over this transport: ZeroMQ with CURVE (mutual authentication and
encryption with raw Curve25519 keys), each provider's key bound to its
on-chain identity through `ProviderDirectory`. One concern per module:

- `frames`: the wire format (fixed binary headers, chunks, bounded reassembly);
- `guard`: which messages a stage accepts (job, round, attempt, sender,
  sequence) — pure, so every refusal is unit-tested without sockets;
- `payloads`: tensors <-> bytes (safetensors, never pickle);
- `keys`: transport key pairs and their files;
- `endpoint`: the sockets (ROUTER to receive, DEALERs to send) and the ZAP
  handler that admits only the keys the caller's policy names;
- `directory`: reading and publishing endpoint records on-chain.

Nothing here can return a stage's weights: the message kinds are data
(activations, gradients), resets, and inference requests and replies.
"""

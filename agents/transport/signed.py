"""One payload per slot: what this provider has signed in the current round.

A signature over (job, round, stage, step, micro-batch, direction, H) whose H
is not what the signer's committed leaf records convicts the signer outright
(AuditCourt.provePayloadEquivocation). An honest stage's payloads are a
deterministic function of the round's checkpoint and the payloads it
received, so every attempt of a round recomputes the same ones, unless a
neighbour sent different payloads in different attempts (a neighbour that
fed a made-up gradient in one attempt, then restarted the round, would hold
this stage's signature over outputs it never commits, and could frame it).
So a provider never signs a second, different hash for a slot of a round: it
refuses (the round stalls for it until the neighbour behaves, or the commit
deadline), and a signature it made can never contradict its commitment. It
also pins what it received: a neighbour's payload for a slot that differs from
the one the same neighbour signed in an earlier attempt of the round is
refused (the neighbour must resend what it first signed, which its own leaf
then has to record, or stall), so honest outputs never diverge in the first
place.

The log survives a crash: each hash is appended to a file (one line
"round step micro_batch direction hex") before the payload is sent; a new
round truncates it.
"""

from __future__ import annotations

from pathlib import Path

from agents.errors import TesseraError

Slot = tuple[int, int, int, int]  # (round, step, micro_batch, direction)


class PayloadConflict(TesseraError):
    """This provider already signed another payload for the slot: it will not equivocate."""


class SignedPayloads:
    """The payload hash signed for each slot of the latest round (persisted at `path`)."""

    def __init__(self, path: Path | None = None, *, what: str = "signed") -> None:
        self.path = path
        self.what = what
        self._hashes: dict[Slot, bytes] = {}
        if path is not None and path.exists():
            for line in path.read_text().splitlines():
                parts = line.split()
                try:
                    slot = tuple(int(p) for p in parts[:4])
                    digest = bytes.fromhex(parts[4])
                except (ValueError, IndexError):
                    continue  # a line torn by a crash: its payload was never sent
                if len(slot) == 4 and len(digest) == 32:
                    self._hashes[slot] = digest
            # Rewritten whole, so a torn last line never runs into the next append.
            path.write_text("".join(_line(s, h) for s, h in self._hashes.items()))

    @property
    def round(self) -> int | None:
        """The latest round with a signed payload (None: none yet)."""
        return max((s[0] for s in self._hashes), default=None)

    def admit(self, round_: int, step: int, micro_batch: int, direction: int, h: bytes) -> None:
        """Record that `h` is signed for this slot; PayloadConflict if another hash was."""
        slot = (round_, step, micro_batch, direction)
        known = self._hashes.get(slot)
        if known is not None:
            if known != h:
                raise PayloadConflict(
                    f"round {round_} step {step} micro-batch {micro_batch} direction "
                    f"{direction}: already {self.what} payload 0x{known.hex()[:16]}, refusing "
                    f"0x{h.hex()[:16]} (payloads differ from an earlier attempt of this round)"
                )
            return
        latest = self.round
        if latest is None or round_ > latest:
            # A new round: the old rounds' slots are never signed again.
            self._hashes = {}
            if self.path is not None:
                self.path.write_text("")
        self._hashes[slot] = h
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(_line(slot, h))


def _line(slot: Slot, h: bytes) -> str:
    return " ".join(map(str, slot)) + f" {h.hex()}\n"

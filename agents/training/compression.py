"""The boundary codec: what crosses a stage boundary, both ways, and its exact wire size.

A payload is a name -> tensor mapping (safetensors-able, hashed as sent).
The job spec's `CompressionConfig` picks the method; `BoundaryCodec` is the
one object the worker, the replay and inference use, so a model is always
served through exactly the codec it was trained with.

Each boundary is seen by the codec as "features": the tensor that is
quantised and whose gradient travels back.

- `none`: features = the hidden state (B, T, d); {"x": float32}.
- `int8`: features = the hidden state; per-row absmax int8
  {"q": int8 (B, T, d), "scale": float32 (B, T, 1)}; 4x smaller. The gradient
  travels back the same way (straight-through: dequantised values are used
  as they are).
- `subspace`: the boundary is a low-rank bottleneck of the model. With a
  fixed orthonormal basis U (d x rank, from the seed) and a fixed high-rank
  anchor A(tokens) (the seeded initial token + position embedding), the
  sender's features are the coordinates c = (h - A(tokens)) @ U and the
  receiver's hidden state is A(tokens) + c @ U^T: exact on the subspace, so
  the bottleneck loses nothing the model can still learn to use. Forward:
  {"q": uint8 (B, T, rank*bits/8) packed, "scale": bfloat16 (rank,) per
  channel or float16 (B, T, 1) per position, "tokens": uint8 (B, T)}.
  Backward: the receiver's gradient with respect to c (which IS the
  projection U^T g of the gradient on its hidden state) quantised to
  `grad_bits`, stochastically rounded with a generator seeded from the
  micro-batch's coordinates, so it is unbiased and a replay draws the same
  bits. No error-feedback state anywhere.

The receiving stage adds its own learned re-embedding of those tokens
(stages.py: `reembed`, which `hidden_of` adds to the anchor), so it sees a
learned high-rank view of each token although only `rank` coordinates
cross. Codes are 2 to 8 bits wide, packed as one bit stream per position
(rank x bits must fill whole bytes). 2-bit codes use all four levels
(±0.5, ±1.5 steps); wider codes are symmetric around an exact zero. `clip` caps forward scales at
clip x the channel RMS, as `grad_clip` does for gradients.

Rounding of forward features is round-to-nearest, so inference (which has
no seed) computes exactly what training computed for the same payload. A
per-channel scale is shared by the positions sent together: decoding one
position at a time (KV cache) quantises it against its own range, not the
training micro-batch's; per-position scales make every position's codes
independent of the others, so cached, full-window and training agree.
"""

from __future__ import annotations

import functools
import hashlib
import math

import torch
import torch.nn.functional as F

from agents.spec import CompressionConfig, ModelConfig
from agents.training.errors import CompressionError
from agents.training.model import Embedding, part_seed

Payload = dict[str, torch.Tensor]

_TINY = torch.finfo(torch.float32).tiny

# The dtype a subspace scale travels in: 2 bytes either way.
_SCALE_DTYPE = {"channel": torch.bfloat16, "position": torch.float16}

_FORWARD_KEYS = {"none": {"x"}, "int8": {"q", "scale"}, "subspace": {"q", "scale", "tokens"}}
_BACKWARD_KEYS = {"none": {"x"}, "int8": {"q", "scale"}, "subspace": {"q", "scale"}}


def dense_nbytes(shape: tuple[int, ...]) -> int:
    """Bytes of the same tensor sent uncompressed as float32."""
    return 4 * math.prod(shape)


def subspace_basis(d_model: int, rank: int, seed: int) -> torch.Tensor:
    """The fixed orthonormal basis (d_model, rank) of a job's boundary subspace."""
    gen = torch.Generator().manual_seed(part_seed(seed, "boundary-subspace"))
    g = torch.randn(d_model, rank, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    # Fix the column signs so the basis does not depend on LAPACK's convention.
    q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, torch.ones(rank))
    return q.to(torch.float32).contiguous()


def stochastic_generator(key: str) -> torch.Generator:
    """A generator seeded from a public string (a micro-batch's coordinates)."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") >> 1
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------ quantisation


def _qmax(bits: int) -> float:
    """The largest level in steps: 2**(bits-1) - 1 (around an exact zero), 1.5 for 2 bits."""
    return 1.5 if bits == 2 else float((1 << (bits - 1)) - 1)


def _centre(bits: int) -> float:
    """The code of the value 0 (a level from 3 bits up; between two levels for 2 bits).

    Codes of 3 to 8 bits are symmetric around an exact zero (code 0 unused:
    2**bits - 1 levels). Three levels would waste a quarter of a 2-bit code,
    so 2-bit codes use all four, at -1.5, -0.5, 0.5 and 1.5 steps."""
    return 1.5 if bits == 2 else float(1 << (bits - 1))


def _quantise(
    x: torch.Tensor, bits: int, per: str, gen: torch.Generator | None, clip: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric quantisation of x (..., k): (packed uint8 codes, scale).

    `clip` > 0 caps the per-channel range at clip x the channel's RMS. The
    payloads are a few kilobytes, so the cost is torch's per-op dispatch, not
    arithmetic: every step below is one op on the whole tensor."""
    qmax = _qmax(bits)
    if per == "channel":
        flat = x.reshape(-1, x.shape[-1])
        top = flat.abs().amax(dim=0)
        if clip > 0:
            top = torch.minimum(top, flat.square().mean(dim=0).sqrt_().mul_(clip))
        # The scale travels as bfloat16 (float32's range: a gradient's tiny
        # scale does not flush to zero); the codes are made against that value.
        scale = (top / qmax).to(torch.bfloat16).to(torch.float32)
    else:
        # The scale travels as float16. Nearest rounding may leave the largest
        # entry a hair past qmax; the clamp below absorbs it (at most 2^-11 of
        # a step), and a state already on the grid re-encodes to itself.
        scale = (x.abs().amax(dim=-1, keepdim=True) / qmax).to(torch.float16).to(torch.float32)
    # An all-zero channel has scale 0: dividing by the tiniest float keeps it 0.
    v = x / scale.clamp(min=_TINY)
    if bits == 2:
        # Levels at half steps: shift them onto the integers 0..3, then round.
        v.add_(_centre(bits))
        lo, hi, centre = 0.0, 3.0, 0.0
    else:
        lo, hi, centre = -qmax, qmax, _centre(bits)
    if gen is None:
        q = v.round_()
    else:
        q = v.add_(torch.rand(v.shape, generator=gen, dtype=v.dtype)).floor_()
    codes = q.clamp_(lo, hi).add_(centre)
    scale = scale.to(_SCALE_DTYPE[per])
    return _pack(codes, bits), scale.contiguous()


def _dequantise(packed: torch.Tensor, scale: torch.Tensor, bits: int, k: int) -> torch.Tensor:
    """Packed codes (..., k*bits/8) and their scale -> float32 values (..., k)."""
    if 8 % bits == 0:
        # One gather from a 256-entry table of every byte's (code - centre) values:
        # the same float32 values as unpacking, centring and converting code by code.
        levels = F.embedding(packed.to(torch.int64), _levels(bits, packed.device))
    else:
        # Codes straddle bytes: every byte's 8 bits from a table, then each
        # code's `bits` of them weighted by their place values, minus the centre.
        stream = F.embedding(packed.to(torch.int64), _bit_table(packed.device))
        grouped = stream.reshape(*packed.shape[:-1], k, bits)
        levels = torch.matmul(grouped, _bit_places(bits, packed.device)).sub_(_centre(bits))
    return levels.reshape(*packed.shape[:-1], k).mul_(scale.to(torch.float32))


def _pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Codes (..., k) as whole floats in [0, 2**bits) -> packed uint8 (..., k*bits/8).

    A bit stream, little end first: bit i of code j is bit bits*j + i of the
    row, and byte m holds the row's bits [8m, 8m + 8), lowest first. Where
    `bits` divides 8 that puts code j of a byte at bits [bits*j, bits*(j+1)),
    and the byte is sum_j code_j * 2**(bits*j): one small matmul, exact in
    float32 (every value is an integer below 256). Other widths split each
    code into its bits first (k*bits must be a multiple of 8)."""
    if 8 % bits == 0:
        per_byte = 8 // bits
        if per_byte == 1:
            return codes.to(torch.uint8)
        grouped = codes.reshape(*codes.shape[:-1], codes.shape[-1] // per_byte, per_byte)
        return torch.matmul(grouped, _places(bits, codes.device)).to(torch.uint8)
    shifts = torch.arange(bits, device=codes.device)
    stream = codes.to(torch.int64).unsqueeze(-1).bitwise_right_shift(shifts).bitwise_and_(1)
    octets = stream.reshape(*codes.shape[:-1], codes.shape[-1] * bits // 8, 8)
    return torch.matmul(octets.to(torch.float32), _bit_places(8, codes.device)).to(torch.uint8)


@functools.cache
def _places(bits: int, device: torch.device) -> torch.Tensor:
    """(8 // bits,) float32 on `device`: the place value 2**(bits*j) of code j in a byte."""
    return torch.tensor([float(1 << (bits * j)) for j in range(8 // bits)], device=device)


@functools.cache
def _bit_places(bits: int, device: torch.device) -> torch.Tensor:
    """(bits,) float32 on `device`: the place value 2**i of bit i."""
    return torch.tensor([float(1 << i) for i in range(bits)], device=device)


@functools.cache
def _bit_table(device: torch.device) -> torch.Tensor:
    """(256, 8) float32 on `device`: the bits of each byte value, lowest first."""
    rows = [[float((b >> i) & 1) for i in range(8)] for b in range(256)]
    return torch.tensor(rows, dtype=torch.float32, device=device)


@functools.cache
def _levels(bits: int, device: torch.device) -> torch.Tensor:
    """(256, 8 // bits) float32 on `device`: the centred level of each code of each byte
    value (built once per device, not copied per call), for widths that divide 8."""
    per_byte, mask = 8 // bits, (1 << bits) - 1
    rows = [
        [float((b >> (bits * j)) & mask) - _centre(bits) for j in range(per_byte)]
        for b in range(256)
    ]
    return torch.tensor(rows, dtype=torch.float32, device=device)


def _int8_encode(x: torch.Tensor) -> Payload:
    absmax = x.abs().amax(dim=-1, keepdim=True)
    scale = absmax / 127.0
    # All-zero rows would divide by zero; any scale decodes them to zero.
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(x / safe).clamp_(-127, 127).to(torch.int8)
    return {"q": q.contiguous(), "scale": scale.contiguous()}


# ------------------------------------------------------------------ codec


class BoundaryCodec:
    """Encoder and decoder of one job's boundaries (see the module docstring)."""

    def __init__(self, cfg: CompressionConfig, model: ModelConfig, seed: int) -> None:
        self.cfg = cfg
        self.method = cfg.method
        self.d_model = model.d_model
        self.subspace = cfg.method == "subspace"
        if cfg.method not in _FORWARD_KEYS:
            raise CompressionError(f"unknown compression method {cfg.method!r}")
        if self.subspace:
            if cfg.rank > model.d_model:
                raise CompressionError(f"rank {cfg.rank} exceeds d_model {model.d_model}")
            if model.vocab_size > 256:
                raise CompressionError("the subspace codec sends tokens as bytes (vocab <= 256)")
            self.basis = subspace_basis(model.d_model, cfg.rank, seed)
            anchor = Embedding(model, seed)
            self._anchor_tok = anchor.tok.weight.detach().clone()
            self._anchor_pos = anchor.pos.weight.detach().clone()
            self._project_anchor()
        self.features = cfg.rank if self.subspace else model.d_model
        self.vocab_size = model.vocab_size

    def _project_anchor(self) -> None:
        # The anchor's coordinates A(tokens) @ U, tabulated per token and per
        # position: the sender subtracts two gathered rows instead of building
        # the (B, T, d) anchor and projecting it every micro-batch.
        self._anchor_tok_u = (self._anchor_tok @ self.basis).contiguous()
        self._anchor_pos_u = (self._anchor_pos @ self.basis).contiguous()
        # U^T stored row-major, as a Linear keeps its weight: (n, d) x (d, r) from
        # it is the product BLAS serves fastest at small r (2-4x faster on CPU).
        self._basis_t = self.basis.T.contiguous()

    def to(self, device: torch.device) -> BoundaryCodec:
        """Move the fixed tensors (basis, anchor) to `device`."""
        if self.subspace:
            self.basis = self.basis.to(device)
            self._anchor_tok = self._anchor_tok.to(device)
            self._anchor_pos = self._anchor_pos.to(device)
            self._project_anchor()
        return self

    # Differentiable maps between a stage's hidden state and the features.

    def features_of(
        self, hidden: torch.Tensor, tokens: torch.Tensor | None, start: int = 0
    ) -> torch.Tensor:
        """Sender side: hidden state (B, T, d) -> features (autograd flows through)."""
        if not self.subspace:
            return hidden
        # (h - A) @ U computed as h @ U - A @ U, with A @ U from the tables, in one op.
        tokens = tokens.to(hidden.device)
        pos = self._anchor_pos_u[start : start + tokens.shape[1]]
        offset = F.embedding(tokens, self._anchor_tok_u).add_(pos)
        flat = torch.addmm(
            offset.view(-1, self.features),
            hidden.reshape(-1, self.d_model),
            self._basis_t.T,
            beta=-1,
        )
        return flat.view(offset.shape)

    def hidden_of(
        self,
        features: torch.Tensor,
        tokens: torch.Tensor | None,
        start: int = 0,
        embedding: Embedding | None = None,
    ) -> torch.Tensor:
        """Receiver side: features -> hidden state (B, T, d) (autograd flows through).

        `embedding`: the receiving stage's own learned token + position
        embedding (stages.py, `reembed`), added to the anchor's tables before
        the lookup; autograd flows into it and into the features, not the
        anchor."""
        if not self.subspace:
            return features
        tokens = tokens.to(features.device)
        end = start + tokens.shape[1]
        tok, pos = self._anchor_tok, self._anchor_pos[start:end]
        if embedding is not None:
            # Two small tables (vocab x d, T x d) added instead of a second
            # (B, T, d) lookup and sum per micro-batch, forward and backward.
            tok = tok + embedding.tok.weight
            pos = pos + embedding.pos.weight[start:end]
        base = F.embedding(tokens, tok).add_(pos)
        # One fused kernel for A + c @ U^T, with U^T row-major: the backward's
        # g @ U then reads it as BLAS serves fastest (half the time of U itself).
        flat = torch.addmm(
            base.view(-1, self.d_model), features.reshape(-1, self.features), self._basis_t
        )
        return flat.view(base.shape)

    # Wire formats.

    def encode_forward(self, features: torch.Tensor, tokens: torch.Tensor | None) -> Payload:
        """Features (B, T, F) on CPU -> the forward payload (round to nearest)."""
        x = features.detach().to("cpu", torch.float32)
        if self.method == "none":
            return {"x": x.contiguous().clone()}
        if self.method == "int8":
            return _int8_encode(x)
        q, scale = _quantise(x, self.cfg.bits, self.cfg.scale, None, self.cfg.clip)
        if tokens is None:
            raise CompressionError("the subspace codec needs the micro-batch's tokens")
        return {"q": q, "scale": scale, "tokens": tokens.to("cpu", torch.uint8).contiguous()}

    def encode_backward(self, grad: torch.Tensor, key: str | None = None) -> Payload:
        """Gradient of the features (B, T, F) -> the backward payload.

        `key` seeds stochastic rounding (subspace with `stochastic_grad`); it
        must name the micro-batch and stage so a replay draws the same bits.
        """
        g = grad.detach().to("cpu", torch.float32)
        if self.method == "none":
            return {"x": g.contiguous().clone()}
        if self.method == "int8":
            return _int8_encode(g)
        gen = None
        if self.cfg.stochastic_grad:
            if key is None:
                raise CompressionError("stochastic rounding needs a key")
            gen = stochastic_generator(key)
        q, scale = _quantise(g, self.cfg.grad_bits, self.cfg.scale, gen, self.cfg.grad_clip)
        return {"q": q, "scale": scale}

    def payload_shape(self, payload: Payload, seq_len: int) -> tuple[int, int]:
        """(rows, positions) a forward payload claims (inference windows vary)."""
        key = "tokens" if self.subspace else ("x" if self.method == "none" else "q")
        t = payload.get(key) if isinstance(payload, dict) else None
        if not isinstance(t, torch.Tensor) or t.dim() < 2:
            raise CompressionError(f"payload has no {key!r} tensor of rank >= 2")
        rows, positions = int(t.shape[0]), int(t.shape[1])
        if not (rows >= 1 and 1 <= positions <= seq_len):
            raise CompressionError(f"payload of {rows}x{positions} positions (seq_len {seq_len})")
        return rows, positions

    def decode_forward(
        self, payload: Payload, shape: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Forward payload of a (B, T) micro-batch -> (features float32, tokens int64 or None)."""
        out = self._decode(payload, shape, _FORWARD_KEYS, self.cfg.bits)
        tokens = None
        if self.subspace:
            tokens = payload["tokens"]
            if tokens.dtype != torch.uint8 or tuple(tokens.shape) != tuple(shape):
                raise CompressionError(
                    f"payload tokens are {tokens.dtype}{tuple(tokens.shape)}, "
                    f"expected uint8{tuple(shape)}"
                )
            # A byte past the vocabulary would index past the anchor and the
            # receiver's re-embedding: the sender's fault, not a crash here.
            if int(tokens.max()) >= self.vocab_size:
                raise CompressionError(
                    f"payload token {int(tokens.max())} is outside the vocabulary "
                    f"(vocab_size {self.vocab_size})"
                )
            tokens = tokens.to(torch.int64)
        return out, tokens

    def decode_backward(self, payload: Payload, shape: tuple[int, int]) -> torch.Tensor:
        """Backward payload of a (B, T) micro-batch -> gradient of the features (float32)."""
        return self._decode(payload, shape, _BACKWARD_KEYS, self.cfg.grad_bits)

    def _decode(
        self, payload: Payload, shape: tuple[int, int], keys: dict, bits: int
    ) -> torch.Tensor:
        if not isinstance(payload, dict) or set(payload) != keys[self.method]:
            got = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
            raise CompressionError(f"payload keys {got} do not match compression {self.method!r}")
        if any(not isinstance(t, torch.Tensor) for t in payload.values()):
            raise CompressionError("payload values must be tensors")
        full = (*shape, self.features)
        if self.method == "none":
            out = payload["x"]
            if out.dtype != torch.float32:
                raise CompressionError(f"payload 'x' has dtype {out.dtype}, expected float32")
        elif self.method == "int8":
            q, scale = payload["q"], payload["scale"]
            if q.dtype != torch.int8 or scale.dtype != torch.float32:
                raise CompressionError("int8 payload has wrong dtypes")
            if scale.shape != (*q.shape[:-1], 1):
                raise CompressionError(
                    f"int8 scale shape {tuple(scale.shape)} does not fit {tuple(q.shape)}"
                )
            out = q.to(torch.float32) * scale
        else:
            q, scale = payload["q"], payload["scale"]
            packed = (*shape, self.features * bits // 8)
            if q.dtype != torch.uint8 or tuple(q.shape) != packed:
                raise CompressionError(
                    f"subspace codes are {q.dtype}{tuple(q.shape)}, expected uint8{packed}"
                )
            want_dtype = _SCALE_DTYPE[self.cfg.scale]
            want_shape = (self.features,) if self.cfg.scale == "channel" else (*shape, 1)
            if scale.dtype != want_dtype or tuple(scale.shape) != want_shape:
                raise CompressionError(
                    f"subspace scale is {scale.dtype}{tuple(scale.shape)}, "
                    f"expected {want_dtype}{want_shape}"
                )
            low, high = (float(v) for v in torch.aminmax(scale))
            # NaN fails both comparisons, so it is refused with the infinities.
            if not (low >= 0 and high < math.inf):
                raise CompressionError("subspace scale must be finite and non-negative")
            out = _dequantise(q, scale, bits, self.features)
        if tuple(out.shape) != full:
            raise CompressionError(f"payload decodes to shape {tuple(out.shape)}, expected {full}")
        return out

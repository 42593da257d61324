"""The AutoGAN generator search space: the one place that defines tokens and architectures.

An architecture is 14 integers, three cells of tokens in this order (SPEC section 2)::

    [conv, norm, up, shortcut | conv, norm, up, shortcut, skip | conv, norm, up, shortcut, skip]

Every other module (cells, supernet, controller heads, keras-tuner hyperparameters, JSON files)
reads the vocabularies and offsets from here.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
from typing import Sequence

__all__ = [
    "ArchitectureError",
    "Token",
    "CELL_TOKENS",
    "NUM_CELLS",
    "ARCH_LENGTH",
    "REFERENCE_ARCHS",
    "Architecture",
    "CellChoice",
    "stage_tokens",
    "stage_slice",
    "num_architectures",
    "validate",
    "validate_cell",
]


from autogan_tf.errors import ArchitectureError  # noqa: E402  (re-exported)


@dataclasses.dataclass(frozen=True)
class Token:
    """One decision of a cell.

    Attributes:
      name: token name (`conv`, `norm`, `up`, `shortcut`, `skip`).
      options: human-readable option names; the token's value is an index into it.
    """

    name: str
    options: tuple

    @property
    def size(self) -> int:
        return len(self.options)


CONV = Token("conv", ("post-activation", "pre-activation"))
NORM = Token("norm", ("none", "batch norm", "instance norm"))
UP = Token("up", ("bilinear", "nearest", "deconv"))
SHORTCUT = Token("shortcut", ("off", "on"))

NUM_CELLS = 3


def _skip_token(cell: int) -> Token:
    # Bit mask over earlier cells; least significant bit = nearest earlier cell.
    opts = []
    for mask in range(2**cell):
        chosen = [f"cell{cell - 1 - b}" for b in range(cell) if mask >> b & 1]
        opts.append("+".join(sorted(chosen)) if chosen else "none")
    return Token("skip", tuple(opts))


CELL_TOKENS: tuple = tuple(
    (CONV, NORM, UP, SHORTCUT) + ((_skip_token(c),) if c > 0 else ()) for c in range(NUM_CELLS)
)
"""Per cell, the tokens in architecture order."""

_OFFSETS = []
_o = 0
for _toks in CELL_TOKENS:
    _OFFSETS.append(_o)
    _o += len(_toks)
ARCH_LENGTH = _o  # 14
del _o


def stage_slice(stage: int) -> slice:
    """Positions of cell `stage`'s tokens inside the 14-integer architecture."""
    _check_stage(stage)
    return slice(_OFFSETS[stage], _OFFSETS[stage] + len(CELL_TOKENS[stage]))


def stage_tokens(stage: int) -> tuple:
    """The tokens that cell `stage` decides (what the stage's controller samples)."""
    _check_stage(stage)
    return CELL_TOKENS[stage]


def _check_stage(stage: int) -> None:
    if not 0 <= stage < NUM_CELLS:
        raise ArchitectureError(f"stage must be in [0, {NUM_CELLS - 1}], got {stage}")


def num_architectures() -> int:
    n = 1
    for toks in CELL_TOKENS:
        for t in toks:
            n *= t.size
    return n


REFERENCE_ARCHS = {
    # The paper's AutoGAN-top1 and its two runners-up (authors' public code).
    "autogan_cifar10_a": (1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 3),
    "autogan_cifar10_b": (1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 3),
    "autogan_cifar10_c": (1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 3),
    # The hand-designed baseline: SN-GAN's ResNet generator (Miyato et al., "Spectral
    # Normalization for Generative Adversarial Networks", ICLR 2018). Every cell is its
    # pre-activation residual block with batch norm, nearest up-sampling and the 1x1-conv
    # shortcut of the up-sampled input; no skips between cells.
    "sngan": (1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0),
}


@dataclasses.dataclass(frozen=True)
class CellChoice:
    """The decoded tokens of one cell."""

    conv: int
    norm: int
    up: int
    shortcut: int
    skip: int = 0

    @property
    def pre_activation(self) -> bool:
        return self.conv == 1

    def skip_sources(self, cell: int) -> tuple:
        """Indices of the earlier cells whose skip outputs feed this cell (ascending)."""
        return tuple(sorted(cell - 1 - b for b in range(cell) if self.skip >> b & 1))

    def describe(self, cell: int) -> str:
        parts = [
            f"{CONV.options[self.conv]} conv",
            f"norm={NORM.options[self.norm]}",
            f"up={UP.options[self.up]}",
            f"shortcut={SHORTCUT.options[self.shortcut]}",
        ]
        if cell > 0:
            src = self.skip_sources(cell)
            parts.append("skip from " + (", ".join(f"cell{s}" for s in src) if src else "none"))
        return f"cell{cell}: " + ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A validated (possibly partial) generator architecture.

    A full architecture has 14 tokens. During multi-level search a partial architecture holds
    the tokens of the first `num_cells` cells only (4 or 9 tokens).
    """

    tokens: tuple

    def __post_init__(self):
        object.__setattr__(self, "tokens", tuple(int(t) for t in self.tokens))
        validate(self.tokens, allow_partial=True)

    # ----- construction -------------------------------------------------------------------
    @classmethod
    def parse(cls, spec, allow_partial: bool = False) -> "Architecture":
        """Parses a reference name, a string of integers, a JSON file path or a sequence.

        Raises:
          ArchitectureError: for an unknown name, a malformed string or file, or invalid tokens.
        """
        if isinstance(spec, Architecture):
            arch = spec
        elif isinstance(spec, str):
            s = spec.strip()
            if s in REFERENCE_ARCHS:
                arch = cls(REFERENCE_ARCHS[s])
            elif s.endswith(".json") or os.path.isfile(s):
                arch = cls.from_json_file(s)
            elif s.startswith("{"):
                arch = cls.from_json(s)
            else:
                parts = s.replace(",", " ").replace("[", " ").replace("]", " ").split()
                if not parts or not all(p.lstrip("-").isdigit() for p in parts):
                    raise ArchitectureError(
                        f"cannot parse architecture {spec!r}: expected one of "
                        f"{sorted(REFERENCE_ARCHS)}, {ARCH_LENGTH} integers, or a .json file")
                arch = cls(tuple(int(p) for p in parts))
        else:
            try:
                _check_integers(spec, "architecture")
                arch = cls(tuple(spec))
            except TypeError as e:
                raise ArchitectureError(f"cannot parse architecture {spec!r}") from e
        if not allow_partial and len(arch.tokens) != ARCH_LENGTH:
            raise ArchitectureError(
                f"architecture has {len(arch.tokens)} tokens, expected {ARCH_LENGTH}: {arch.tokens}")
        return arch

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArchitectureError(f"malformed architecture JSON: {e}") from e
        return cls._from_dict(data)

    @classmethod
    def from_json_file(cls, path: str) -> "Architecture":
        if not os.path.isfile(path):
            raise ArchitectureError(f"architecture file not found: {path}")
        with open(path) as f:
            text = f.read()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArchitectureError(f"malformed architecture JSON in {path}: {e}") from e
        return cls._from_dict(data, source=path)

    @classmethod
    def _from_dict(cls, data, source: str = "JSON") -> "Architecture":
        if isinstance(data, dict) and "architectures" in data:  # a search's top-K file
            entries = data["architectures"]
            if not entries:
                raise ArchitectureError(f"{source} lists no architectures")
            data = entries[0]
        if isinstance(data, dict):
            if "arch" not in data:
                raise ArchitectureError(f"{source} has no 'arch' key (keys: {sorted(data)})")
            data = data["arch"]
        if not isinstance(data, list):
            raise ArchitectureError(f"{source}: 'arch' must be a list of integers, got {data!r}")
        _check_integers(data, f"{source}: 'arch'")
        return cls(tuple(data))

    # ----- views --------------------------------------------------------------------------
    @property
    def num_cells(self) -> int:
        return _num_cells(len(self.tokens))

    def cell(self, c: int) -> CellChoice:
        if not 0 <= c < self.num_cells:
            raise ArchitectureError(f"architecture has {self.num_cells} cells, asked for cell {c}")
        return CellChoice(*self.tokens[stage_slice(c)])

    @property
    def cells(self) -> tuple:
        return tuple(self.cell(c) for c in range(self.num_cells))

    def describe(self) -> str:
        return "\n".join(self.cell(c).describe(c) for c in range(self.num_cells))

    def padded(self) -> tuple:
        """The tokens padded with zeros to 14 (for feeding a partial arch to the supernet)."""
        return self.tokens + (0,) * (ARCH_LENGTH - len(self.tokens))

    def to_dict(self, **extra) -> dict:
        d = {"arch": list(self.tokens), "cells": self.describe().splitlines()}
        d.update(extra)
        return d

    def to_json(self, **extra) -> str:
        return json.dumps(self.to_dict(**extra))

    def write_json(self, path: str, **extra) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(**extra), f, indent=2)
            f.write("\n")

    def __str__(self) -> str:
        return " ".join(str(t) for t in self.tokens)


def _check_integers(tokens, source: str) -> None:
    """Refuses anything but integers: a float token (3.7, even 3.0, as JSON may hold) or a
    bool is not silently truncated."""
    for i, t in enumerate(tokens):
        if isinstance(t, bool) or not isinstance(t, numbers.Integral):
            raise ArchitectureError(f"{source} token {i} is {t!r}; tokens are integers")


def _num_cells(length: int) -> int:
    total = 0
    for c, toks in enumerate(CELL_TOKENS):
        total += len(toks)
        if total == length:
            return c + 1
    raise ArchitectureError(
        f"architecture has {length} tokens; a full one has {ARCH_LENGTH} "
        f"(cells of {', '.join(str(len(t)) for t in CELL_TOKENS)} tokens)")


def validate(tokens: Sequence[int], allow_partial: bool = False) -> None:
    """Checks every token's range; raises ArchitectureError naming the first bad one."""
    n = _num_cells(len(tokens))
    if not allow_partial and n != NUM_CELLS:
        raise ArchitectureError(f"architecture has {len(tokens)} tokens, expected {ARCH_LENGTH}")
    for c in range(n):
        for i, tok in enumerate(CELL_TOKENS[c]):
            pos = _OFFSETS[c] + i
            v = tokens[pos]
            if not 0 <= v < tok.size:
                allowed = ", ".join(f"{k}={name}" for k, name in enumerate(tok.options))
                raise ArchitectureError(
                    f"token {pos} (cell{c} {tok.name}) is {v}; it may take 0..{tok.size - 1} "
                    f"({allowed})")


def validate_cell(cell: int, tokens: Sequence[int]) -> None:
    """Checks the tokens of one cell; raises ArchitectureError naming the bad one."""
    _check_stage(cell)
    toks = CELL_TOKENS[cell]
    if len(tokens) != len(toks):
        raise ArchitectureError(
            f"cell{cell} takes {len(toks)} tokens ({', '.join(t.name for t in toks)}), "
            f"got {len(tokens)}: {list(tokens)}")
    prefix = [0] * _OFFSETS[cell]
    validate(list(prefix) + list(tokens), allow_partial=True)


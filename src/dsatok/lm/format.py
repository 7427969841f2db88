"""Token layout and sequence format for LLM voice cloning (seed section 4.1.3).

The LM's vocabulary is its text vocabulary (``text_vocab`` ids, untouched) followed by the speech
symbols: ``semantic`` codes, then ``acoustic`` codes of each stacked layer, then separators::

    prompt:   <bos_s> S_sem <ac> S_ac <sep> A_sem <ac> A_ac <resp>
    response: C_sem <ac> C_ac <eos>

Acoustic layers are interleaved frame by frame (``t0 l0, t0 l1, t1 l0, ...``). Only the response
is trained on (labels of the prompt are -100).
"""

from __future__ import annotations

import dataclasses

import torch

__all__ = ["TokenLayout", "SPECIALS", "IGNORE"]

SPECIALS = ("<bos_s>", "<ac>", "<sep>", "<resp>", "<eos_s>")
IGNORE = -100


@dataclasses.dataclass(frozen=True)
class TokenLayout:
    """Where each speech symbol lives in the extended vocabulary."""

    text_vocab: int  # size of the base LM's own vocabulary (0 for a speech-only LM)
    semantic_codes: int
    acoustic_codes: int
    acoustic_layers: int = 1

    @property
    def sem_offset(self) -> int:
        return self.text_vocab

    def ac_offset(self, layer: int) -> int:
        return self.text_vocab + self.semantic_codes + layer * self.acoustic_codes

    @property
    def special_offset(self) -> int:
        return self.ac_offset(self.acoustic_layers)

    def special(self, name: str) -> int:
        return self.special_offset + SPECIALS.index(name)

    @property
    def size(self) -> int:
        return self.special_offset + len(SPECIALS)

    # ------------------------------------------------------------------ encoding
    def speech(self, semantic: torch.Tensor, acoustic: torch.Tensor) -> list[int]:
        """``semantic [T_s]`` and ``acoustic [L, T_a]`` → ``S_sem <ac> S_ac`` ids."""
        if acoustic.dim() != 2 or acoustic.shape[0] != self.acoustic_layers:
            raise ValueError(f"acoustic tokens must be [{self.acoustic_layers}, T], got {list(acoustic.shape)}")
        sem = (semantic.long() + self.sem_offset).tolist()
        offs = torch.tensor([self.ac_offset(i) for i in range(self.acoustic_layers)])[:, None]
        ac = (acoustic.long() + offs).t().reshape(-1).tolist()
        return sem + [self.special("<ac>")] + ac

    def prompt(self, content: tuple[torch.Tensor, torch.Tensor], voice: tuple[torch.Tensor, torch.Tensor]) -> list[int]:
        return ([self.special("<bos_s>")] + self.speech(*content) + [self.special("<sep>")] + self.speech(*voice)
                + [self.special("<resp>")])

    def response(self, target: tuple[torch.Tensor, torch.Tensor]) -> list[int]:
        return self.speech(*target) + [self.special("<eos_s>")]

    def example(self, content, voice, target) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` with the prompt masked out of the loss."""
        p, r = self.prompt(content, voice), self.response(target)
        return p + r, [IGNORE] * len(p) + r

    # ------------------------------------------------------------------ decoding
    def parse_response(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Generated ids → ``(semantic [T_s], acoustic [L, T_a], ended)``; symbols of the wrong
        kind for their position are dropped, an incomplete last acoustic frame is cut."""
        eos, sep_ac = self.special("<eos_s>"), self.special("<ac>")
        ended = eos in ids
        ids = ids[: ids.index(eos)] if ended else ids
        if sep_ac in ids:
            k = ids.index(sep_ac)
            sem_ids, ac_ids = ids[:k], ids[k + 1 :]
        else:
            sem_ids, ac_ids = ids, []
        sem = [i - self.sem_offset for i in sem_ids if self.sem_offset <= i < self.sem_offset + self.semantic_codes]
        layers: list[list[int]] = [[] for _ in range(self.acoustic_layers)]
        want = 0
        for i in ac_ids:
            lo = self.ac_offset(want)
            if lo <= i < lo + self.acoustic_codes:
                layers[want].append(i - lo)
                want = (want + 1) % self.acoustic_layers
        n = min(len(x) for x in layers)
        ac = torch.tensor([x[:n] for x in layers], dtype=torch.long).reshape(self.acoustic_layers, n)
        return torch.tensor(sem, dtype=torch.long), ac, ended

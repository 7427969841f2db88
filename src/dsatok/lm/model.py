"""A Qwen3 causal LM whose vocabulary is extended with speech symbols.

- :meth:`SpeechLM.from_base` loads a real Qwen3 (e.g. 0.6B) from a **local directory** and resizes
  its embedding table and head; new rows start at the mean of the existing rows plus small noise
  (so their logits start near the average text token instead of at random extremes).
- :meth:`SpeechLM.tiny` builds a small Qwen3 from a config (trained from scratch offline).
- :meth:`SpeechLM.generate` samples with temperature / top-k until ``<eos_s>`` or
  ``max_new_tokens`` (generation always ends) and reports whether the limit was hit.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from ..files import atomic_write_json
from ..models.io import ModelLoadError
from .format import IGNORE, TokenLayout

__all__ = ["SpeechLM", "TINY_QWEN3", "Generation"]

TINY_QWEN3 = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 2, "head_dim": 64, "max_position_embeddings": 4096, "rope_theta": 10000.0,
              "tie_word_embeddings": True}
LAYOUT_FILE = "speech_layout.json"


@dataclasses.dataclass
class Generation:
    ids: list[int]
    hit_max: bool


class SpeechLM(nn.Module):
    """``forward(input_ids [B, T], labels [B, T], attention_mask) -> loss`` (response-only SFT)."""

    def __init__(self, lm: nn.Module, layout: TokenLayout) -> None:
        super().__init__()
        self.lm, self.layout = lm, layout

    @classmethod
    def tiny(cls, layout: TokenLayout, seed: int = 0, **overrides) -> "SpeechLM":
        from transformers import Qwen3Config, Qwen3ForCausalLM

        torch.manual_seed(seed)
        cfg = Qwen3Config(vocab_size=layout.size, **{**TINY_QWEN3, **overrides})
        return cls(Qwen3ForCausalLM(cfg), layout)

    @classmethod
    def from_base(cls, base_dir: str | Path, semantic_codes: int, acoustic_codes: int, acoustic_layers: int = 1,
                  seed: int = 0) -> "SpeechLM":
        """A pretrained Qwen3 from a local directory, vocabulary extended with the speech symbols."""
        from transformers import AutoModelForCausalLM

        d = Path(base_dir)
        if not (d / "config.json").is_file():
            raise ModelLoadError(f"{d}: not a transformers model directory (no config.json)")
        try:
            lm = AutoModelForCausalLM.from_pretrained(str(d), local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{d}: cannot load the base LM ({str(e).splitlines()[0]})") from None
        if lm.config.model_type != "qwen3":
            raise ModelLoadError(f"{d}: a '{lm.config.model_type}' model, expected qwen3")
        text_vocab = lm.get_input_embeddings().weight.shape[0]
        layout = TokenLayout(text_vocab, semantic_codes, acoustic_codes, acoustic_layers)
        _extend_vocab(lm, layout.size, seed)
        return cls(lm, layout)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Mean next-token cross-entropy over the labelled positions (``labels != -100``).

        The same loss as the transformers head, but the output projection runs only where a label
        is: with a 65k-symbol acoustic vocabulary the head costs several times the whole body of a
        small LM, and the prompt (about two thirds of a cloning sequence) carries no label.
        """
        import torch.nn.functional as F

        h = self.lm.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, T, D]
        target = labels[:, 1:]
        keep = target != IGNORE
        logits = self.lm.get_output_embeddings()(h[:, :-1][keep])  # [N, V]
        return F.cross_entropy(logits.float(), target[keep])

    @torch.no_grad()
    def generate(self, prompt: list[int], max_new_tokens: int, temperature: float = 1.0, top_k: int = 50,
                 seed: int = 0) -> Generation:
        """Sample a response after ``prompt``; stops at ``<eos_s>`` or after ``max_new_tokens``."""
        self.eval()
        g = torch.Generator().manual_seed(seed)
        eos = self.layout.special("<eos_s>")
        ids = torch.tensor([prompt], dtype=torch.long)
        out = self.lm(input_ids=ids, use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1]
        gen: list[int] = []
        for _ in range(max_new_tokens):
            logits = logits.float()
            logits[:, : self.layout.sem_offset] = float("-inf")  # speech symbols only in a response
            if temperature <= 0:
                nxt = int(logits.argmax(-1))
            else:
                logits = logits / temperature
                if top_k > 0:
                    kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                nxt = int(torch.multinomial(logits.softmax(-1), 1, generator=g))
            gen.append(nxt)
            if nxt == eos:
                return Generation(gen, False)
            out = self.lm(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[:, -1]
        return Generation(gen, True)

    def save_pretrained(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        self.lm.save_pretrained(str(out), safe_serialization=True)
        atomic_write_json(out / LAYOUT_FILE, dataclasses.asdict(self.layout))
        return out

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> "SpeechLM":
        from transformers import AutoModelForCausalLM

        d = Path(model_dir)
        if not (d / LAYOUT_FILE).is_file():
            raise ModelLoadError(f"{d}: not a dsatok speech LM (no {LAYOUT_FILE})")
        layout = TokenLayout(**json.loads((d / LAYOUT_FILE).read_text()))
        lm = AutoModelForCausalLM.from_pretrained(str(d), local_files_only=True, dtype=torch.float32)
        if lm.get_input_embeddings().weight.shape[0] != layout.size:
            raise ModelLoadError(f"{d}: vocabulary {lm.get_input_embeddings().weight.shape[0]} != layout {layout.size}")
        return cls(lm, layout).eval()


def _extend_vocab(lm: nn.Module, size: int, seed: int) -> None:
    """Resize embeddings (and an untied head) to ``size``; new rows = mean of old rows + noise."""
    old = lm.get_input_embeddings().weight.shape[0]
    if size <= old:
        raise ValueError(f"extended vocabulary {size} must exceed the base vocabulary {old}")
    lm.resize_token_embeddings(size, mean_resizing=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in {id(m.weight): m.weight for m in (lm.get_input_embeddings(), lm.get_output_embeddings())
                  if m is not None}.values():
            base = w[:old]
            std = float(base.std())
            w[old:] = base.mean(0) + torch.randn(size - old, w.shape[1], generator=g) * 0.1 * std

"""Train the mel refiner (:mod:`dsatok.models.refiner`) on a frozen DSA-Tokenizer.

The frozen tokenizer encodes every corpus utterance once and its decoder's prior gives ``μ`` (in
reconstruction: the voice from the same utterance); ``μ``, the true normalised mel, the prior's
voice statistics and the acoustic latent at the mel rate are cached in the run directory. Training
reads random crops of that cache: the refiner adds a residual to ``μ``; a conditional patch
discriminator on ``[mel; μ]`` (hinge loss, feature matching) asks for the fine structure, an L1 on
the gaussian-smoothed mel (``env_weight``) keeps the envelope on the truth, and an optional plain L1
(``l1_weight``) the detail that is predictable. The acoustic latent,
when the refiner reads it, is zeroed for a random ``ac_drop`` share of the crops, as recombination
(where it is not aligned) always sees it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..models.refiner import MelRefiner, RefinerConfig, ac_at_mel_rate
from .config import TrainConfig, load_stage_config
from .gan import GANModel, gan_losses

__all__ = ["RefinerStageConfig", "RefinerTask", "REFINER_STAGE_PRESETS", "MelDiscriminator", "smooth_mel",
           "cache_features", "run"]


@dataclasses.dataclass(frozen=True)
class RefinerStageConfig:
    model: RefinerConfig = RefinerConfig()
    train: TrainConfig = TrainConfig()
    tokenizer: str = ""  # DSA-Tokenizer directory ("" = the bundled dsa-default)
    crop_frames: int = 300
    batch_size: int = 16
    adv_weight: float = 1.0
    fm_weight: float = 2.0
    env_weight: float = 10.0
    l1_weight: float = 0.0  # plain L1 to the true mel (detail where it is predictable, e.g. from an aligned latent)
    env_sigma: float = 1.5  # gaussian sigma (mel bins and frames) of the envelope the L1 reads
    ac_drop: float = 0.5
    disc_channels: int = 32
    max_utterances: int = 0  # 0: every training utterance
    cache_dir: str = ""  # where the cached features live ("" = the run directory); runs may share one

    def __post_init__(self) -> None:
        if self.crop_frames < 16 or self.batch_size < 1:
            raise ConfigError("crop_frames must be >= 16 and batch_size >= 1")
        if not 0.0 <= self.ac_drop <= 1.0:
            raise ConfigError(f"ac_drop must be in [0, 1], got {self.ac_drop}")
        if self.env_sigma <= 0:
            raise ConfigError(f"env_sigma must be > 0, got {self.env_sigma}")


_TRAIN = {"optim": {"lr": 2e-4, "warmup_steps": 200, "betas": [0.8, 0.99], "weight_decay": 0.0, "grad_clip": 10.0,
                    "decay": "constant"},
          "best_metric": "env_l1", "ckpt_every": 500, "eval_every": 500, "eval_batches": 8, "log_every": 25}
REFINER_STAGE_PRESETS: dict[str, dict] = {
    "tiny": {"model": {"dim": 192, "blocks": 6}, "train": {"max_steps": 20_000, **_TRAIN}},
    "aligned": {"model": {"dim": 192, "blocks": 6, "ac_dim": 128}, "train": {"max_steps": 20_000, **_TRAIN}},
}


def _gauss(sigma: float) -> torch.Tensor:
    r = max(1, int(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
    return k / k.sum()


def smooth_mel(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``[B, n_mels, T]`` blurred by a gaussian of ``sigma`` bins along frequency and frames along
    time (edges replicated): the spectral envelope without the harmonics and fast detail."""
    k = _gauss(sigma).to(x)
    p = len(k) // 2
    b, n, t = x.shape
    y = F.conv1d(F.pad(x.reshape(b * n, 1, t), (p, p), mode="replicate"), k[None, None]).reshape(b, n, t)
    y = y.transpose(1, 2).reshape(b * t, 1, n)
    y = F.conv1d(F.pad(y, (p, p), mode="replicate"), k[None, None]).reshape(b, t, n)
    return y.transpose(1, 2)


class _PatchD(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        wn = nn.utils.parametrizations.weight_norm
        self.convs = nn.ModuleList([wn(nn.Conv2d(2, ch, 5, (2, 2), 2)), wn(nn.Conv2d(ch, 2 * ch, 5, (2, 2), 2)),
                                    wn(nn.Conv2d(2 * ch, 2 * ch, 5, (2, 1), 2)),
                                    wn(nn.Conv2d(2 * ch, 2 * ch, 3, 1, 1))])
        self.out = wn(nn.Conv2d(2 * ch, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        h = x
        for c in self.convs:
            h = F.leaky_relu(c(h), 0.1)
            feats.append(h)
        return self.out(h).flatten(1), feats


class MelDiscriminator(nn.Module):
    """Conditional patch discriminator: ``forward(x [B, 2, n_mels, T])`` (a mel and its ``μ`` as
    two image channels) → ``[(logits, features)]`` at full and half time resolution."""

    def __init__(self, ch: int = 32) -> None:
        super().__init__()
        self.ds = nn.ModuleList([_PatchD(ch), _PatchD(ch)])

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        half = F.avg_pool2d(x, (1, 2))
        return [self.ds[0](x), self.ds[1](half)]


@torch.no_grad()
def cache_features(tokenizer: Any, cuts: list, progress: bool = True) -> list[dict[str, torch.Tensor]]:
    """Per utterance: ``mu``, ``mel`` (normalised, ``[n_mels, T]``, fp16), ``voice [V]`` and ``ac
    [T, A]`` (the acoustic latent repeated to the mel rate, fp16), from the frozen ``tokenizer``."""
    from tqdm import tqdm

    from ..data.batches import load_cut_audio

    out = []
    dec = tokenizer.decoder
    for c in tqdm(cuts, desc="refiner features", disable=not progress):
        wav = torch.from_numpy(load_cut_audio(c))
        toks = tokenizer.encode(wav)
        mel, _ = tokenizer.acoustic.mel(wav[None], torch.tensor([wav.shape[0]]))
        t = mel.shape[-1]
        ctx = tokenizer.decoder_context(toks, t)
        if ctx.mu is None or ctx.voice is None:
            raise ConfigError("the refiner needs a decoder with a renderer prior (decoder.prior_kind='renderer')")
        ac = ac_at_mel_rate(tokenizer.acoustic.embed(toks[0].acoustic), t, tokenizer.acoustic.cfg.stride)[0]
        out.append({"mu": ctx.mu[0].half(), "mel": dec.normalize(mel)[0].half(), "voice": ctx.voice[0].float(),
                    "ac": ac.half()})
    return out


class CropBatches:
    """Endless random crops of the cached features; the crops of step ``k`` come from ``seed + k``
    (so a resumed run sees the same batches). Yields ``dict`` of ``mu, mel [B, n, T]``, ``voice
    [B, V]``, ``ac [B, T, A]``, ``keep_ac [B]``."""

    def __init__(self, items: list[dict[str, torch.Tensor]], crop: int, batch_size: int, ac_drop: float,
                 seed: int) -> None:
        self.items = [x for x in items if x["mu"].shape[-1] >= 8]
        if not self.items:
            raise ConfigError("no utterance of at least 8 mel frames to train the refiner on")
        self.crop, self.bs, self.ac_drop, self.seed, self.k = crop, batch_size, ac_drop, seed, 0

    def state_dict(self) -> dict[str, int]:
        return {"k": self.k}

    def load_state_dict(self, st: dict[str, int]) -> None:
        self.k = int(st["k"])

    def batch(self, g: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, len(self.items), (self.bs,), generator=g).tolist()
        cols: dict[str, list[torch.Tensor]] = {"mu": [], "mel": [], "voice": [], "ac": []}
        for i in idx:
            x = self.items[i]
            t = x["mu"].shape[-1]
            s = int(torch.randint(0, max(0, t - self.crop) + 1, (1,), generator=g))
            n = min(self.crop, t)
            for k in ("mu", "mel"):
                cols[k].append(F.pad(x[k][:, s : s + n].float(), (0, self.crop - n), mode="replicate"))
            cols["ac"].append(F.pad(x["ac"][s : s + n].float().T, (0, self.crop - n), mode="replicate").T)
            cols["voice"].append(x["voice"])
        b = {k: torch.stack(v) for k, v in cols.items()}
        b["keep_ac"] = (torch.rand(self.bs, generator=g) >= self.ac_drop).float()
        return b

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            g = torch.Generator().manual_seed(self.seed + self.k)
            self.k += 1
            yield self.batch(g)


class RefinerTask:
    def __init__(self, cfg: RefinerStageConfig) -> None:
        self.cfg = cfg

    def build_model(self) -> nn.Module:
        return GANModel(MelRefiner(self.cfg.model), MelDiscriminator(self.cfg.disc_channels))

    def _refine(self, gen: MelRefiner, b: dict[str, torch.Tensor]) -> torch.Tensor:
        ac = b["ac"] * b["keep_ac"][:, None, None] if gen.cfg.ac_dim else None
        return gen(b["mu"], b["voice"], ac)

    def training_step(self, model, batch, step):
        return model(self._loss, batch, step)

    def _loss(self, m: GANModel, b: dict[str, torch.Tensor], step: int):
        c = self.cfg
        fake = self._refine(m.gen, b)
        env = F.l1_loss(smooth_mel(fake, c.env_sigma), smooth_mel(b["mel"], c.env_sigma))
        g = gan_losses(m.disc, torch.stack([b["mel"], b["mu"]], 1), torch.stack([fake, b["mu"]], 1))
        l1 = F.l1_loss(fake, b["mel"])
        loss = (c.env_weight * env + c.l1_weight * l1 + g["d_loss"] + c.adv_weight * g["g_adv"]
                + c.fm_weight * g["fm"])
        return loss, {"env_l1": float(env.detach()), "l1": float(l1.detach()),
                      **{k: float(v.detach()) for k, v in g.items()}}

    @torch.no_grad()
    def eval_step(self, model, b) -> dict[str, float]:
        m = model.module if hasattr(model, "module") else model
        fake = self._refine(m.gen, b)
        s = self.cfg.env_sigma
        detail = lambda x: (x - smooth_mel(x, s)).std()  # noqa: E731
        return {"env_l1": float(F.l1_loss(smooth_mel(fake, s), smooth_mel(b["mel"], s))),
                "l1": float(F.l1_loss(fake, b["mel"])), "mu_l1": float(F.l1_loss(b["mu"], b["mel"])),
                "detail_ratio": float(detail(fake) / detail(b["mel"]))}

    def export(self, model, out_dir: Path) -> None:
        m = model.module if hasattr(model, "module") else model
        m.gen.save_pretrained(out_dir)


def _features(tok: Any, corpus: str, split: str, path: Path, limit: int, progress: bool) -> list:
    if path.is_file():
        return torch.load(path)
    from ..files import atomic_path
    from ..data.manifests import load_cuts

    cuts = list(load_cuts(corpus, split))
    if limit:
        g = torch.Generator().manual_seed(0)
        cuts = [cuts[i] for i in sorted(torch.randperm(len(cuts), generator=g)[:limit].tolist())]
    feats = cache_features(tok, cuts, progress)
    with atomic_path(path) as tmp:
        torch.save(feats, tmp)
    return feats


def run(corpus: str, preset: str = "tiny", config: str | None = None, overrides: list[str] | None = None,
        progress: bool = True) -> dict[str, Any]:
    from ..models.io import model_files_digest
    from ..resources import resolve_model
    from ..tokenizer import DSATokenizer
    from .engine import Trainer

    cfg = load_stage_config(RefinerStageConfig, REFINER_STAGE_PRESETS, preset, corpus, config, list(overrides or []))
    if not cfg.train.data.corpus:
        raise ConfigError("the refiner needs a corpus (train.data.corpus)")
    run_dir = Path(cfg.train.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tok = DSATokenizer.from_pretrained(cfg.tokenizer or None)
    # the cache is keyed by the decoder's files (mu depends on them) and the tokens' fingerprint
    key = f"{tok.fingerprint}-{model_files_digest(resolve_model(cfg.tokenizer or None) / 'decoder')}"
    d = cfg.train.data
    cache = Path(cfg.cache_dir) if cfg.cache_dir else run_dir
    cache.mkdir(parents=True, exist_ok=True)
    train = _features(tok, d.corpus, d.train_split, cache / f"features-{key}-{d.train_split}-{cfg.max_utterances}.pt",
                      cfg.max_utterances, progress)
    dev = _features(tok, d.corpus, d.dev_split, cache / f"features-{key}-{d.dev_split}-64.pt", 64, progress)
    del tok
    batches = CropBatches(train, cfg.crop_frames, cfg.batch_size, cfg.ac_drop, cfg.train.seed)
    dev_b = CropBatches(dev, cfg.crop_frames, cfg.batch_size, 0.0, 12345)

    def dev_batches():
        g = torch.Generator().manual_seed(12345)
        return (dev_b.batch(g) for _ in range(cfg.train.eval_batches))

    return Trainer(RefinerTask(cfg), cfg.train, batches, dev_batches, full_config=cfg, progress=progress).fit()

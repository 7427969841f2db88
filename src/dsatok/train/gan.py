"""GAN parts for waveform decoders (training only): multi-period and multi-resolution
discriminators, hinge losses and feature matching (as in HiFi-GAN / Vocos)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

__all__ = ["MultiPeriodDiscriminator", "MultiResolutionDiscriminator", "Discriminators", "GANModel", "gan_losses"]


class _PeriodD(nn.Module):
    def __init__(self, period: int, ch: int) -> None:
        super().__init__()
        self.period = period
        chans = [1, ch, ch * 4, ch * 8, ch * 8]
        self.convs = nn.ModuleList(
            nn.utils.parametrizations.weight_norm(nn.Conv2d(chans[i], chans[i + 1], (5, 1), (3, 1) if i < 3 else 1, (2, 0)))
            for i in range(len(chans) - 1))
        self.out = nn.utils.parametrizations.weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, n = x.shape
        if n % self.period:
            x = F.pad(x, (0, self.period - n % self.period), mode="reflect")
        h = x.view(b, 1, -1, self.period)
        feats = []
        for c in self.convs:
            h = F.leaky_relu(c(h), 0.1)
            feats.append(h)
        return self.out(h).flatten(1), feats


class MultiPeriodDiscriminator(nn.Module):
    """``forward(wav [B, N]) -> [(logits [B, *], features)]`` for periods 2, 3, 5, 7, 11."""

    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), ch: int = 16) -> None:
        super().__init__()
        self.ds = nn.ModuleList(_PeriodD(p, ch) for p in periods)

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(x) for d in self.ds]


class _ResD(nn.Module):
    def __init__(self, n_fft: int, ch: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        wn = nn.utils.parametrizations.weight_norm
        self.convs = nn.ModuleList([wn(nn.Conv2d(1, ch, (7, 5), (2, 2), (3, 2))),
                                    wn(nn.Conv2d(ch, ch, (5, 3), (2, 1), (2, 1))),
                                    wn(nn.Conv2d(ch, ch, (5, 3), (2, 2), (2, 1))),
                                    wn(nn.Conv2d(ch, ch, 3, 1, 1))])
        self.out = wn(nn.Conv2d(ch, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        s = torch.stft(x, self.n_fft, self.n_fft // 4, window=self.window, return_complex=True).abs()
        h = torch.log(s.clamp_min(1e-5))[:, None]
        feats = []
        for c in self.convs:
            h = F.leaky_relu(c(h), 0.1)
            feats.append(h)
        return self.out(h).flatten(1), feats


class MultiResolutionDiscriminator(nn.Module):
    """Spectrogram discriminators at several STFT resolutions (Vocos MRD)."""

    def __init__(self, ffts: tuple[int, ...] = (256, 512, 1024), ch: int = 32) -> None:
        super().__init__()
        self.ds = nn.ModuleList(_ResD(n, ch) for n in ffts)

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(x) for d in self.ds]


class Discriminators(nn.Module):
    """MPD + MRD: ``forward(wav [B, N])`` returns all (logits, features) pairs."""

    def __init__(self, mpd_ch: int = 16, mrd_ch: int = 32) -> None:
        super().__init__()
        self.mpd = MultiPeriodDiscriminator(ch=mpd_ch)
        self.mrd = MultiResolutionDiscriminator(ch=mrd_ch)

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return self.mpd(x) + self.mrd(x)


def gan_losses(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """Hinge losses for one optimizer over generator and discriminator together.

    ``d_loss`` reaches only the discriminator (fake is detached); ``g_adv`` and ``fm`` reach only
    the generator (they run the discriminator with detached parameters via ``functional_call``).
    """
    d_real = disc(real)
    d_fake = disc(fake.detach())
    d_loss = sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for (r, _), (f, _) in zip(d_real, d_fake))
    frozen = {k: v.detach() for k, v in disc.named_parameters()}
    frozen.update(dict(disc.named_buffers()))
    g_out = functional_call(disc, frozen, (fake,))
    g_adv = sum(F.relu(1 - f).mean() for f, _ in g_out)
    fm = sum(F.l1_loss(gf, rf.detach()) / (rf.detach().abs().mean() + 1e-5)
             for (_, rfs), (_, gfs) in zip(d_real, g_out) for rf, gf in zip(rfs, gfs)) / max(1, len(g_out))
    n = len(d_real)
    return {"d_loss": d_loss / n, "g_adv": g_adv / n, "fm": fm}


class GANModel(nn.Module):
    """A generator and its discriminators as one module (``gen``, ``disc``)."""

    def __init__(self, gen: nn.Module, disc: nn.Module) -> None:
        super().__init__()
        self.gen, self.disc = gen, disc

    def forward(self, fn, *args):
        """Run ``fn(self, *args)`` inside the (DDP-wrapped) forward, so gradient sync hooks fire."""
        return fn(self, *args)

"""Where Griffin-Lim loses quality: PESQ of the mel pseudo-inverse magnitude with different phases.

Usage: python3 docs/experiments/phase_ceiling.py CORPUS [N] [VOCOS_DIR]

For the first N test utterances of CORPUS (default 10): the shared 100-bin mel of the clean audio →
its pseudo-inverse magnitude, then the phase from (a) 32 fast Griffin-Lim iterations from a random,
a zero and the true phase, (b) the true phase with no iteration; with VOCOS_DIR also that Vocos
vocoder alone and Griffin-Lim started from its phase. Prints the mean wideband PESQ of each.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from dsatok.audio import MelFrontend
from dsatok.data.manifests import load_cuts
from dsatok.eval import metrics as M
from dsatok.models.vocoder import GriffinLim, VocosVocoder, griffin_lim, pinv_magnitude
from dsatok.data.batches import load_cut_audio


def _fgla(mag: torch.Tensor, ang: torch.Tensor, n_iter: int, gl: GriffinLim) -> torch.Tensor:
    """The library's fast Griffin-Lim started from the unit-modulus phase ``ang``."""
    c = gl.cfg_mel
    return griffin_lim(mag, c.n_fft, c.hop_length, gl.window, n_iter, gl.momentum, start=ang)


def main(argv: list[str]) -> None:
    corpus, n = argv[0], int(argv[1]) if len(argv) > 1 else 10
    vocos = VocosVocoder.from_pretrained(argv[2]) if len(argv) > 2 else None
    fe, gl = MelFrontend(), GriffinLim()
    c = fe.cfg
    kw = dict(n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.n_fft, window=gl.window, center=True)
    scores: dict[str, list[float]] = {}
    for cut in list(load_cuts(corpus, "test"))[:n]:
        x = load_cut_audio(cut)
        xt = torch.from_numpy(x)[None]
        mel = fe(xt)[0]
        with torch.no_grad():
            mag = pinv_magnitude(gl.pinv, mel, c.power)
            true = torch.exp(1j * torch.angle(torch.stft(xt, return_complex=True, **kw)[..., : mel.shape[-1]]))
            rand = gl(mel)
            outs = {"griffin-lim 32 it., random start (the fallback)": rand,
                    "griffin-lim 32 it., zero phase start": _fgla(mag, torch.ones_like(true), 32, gl),
                    "griffin-lim 32 it., true phase start": _fgla(mag, true, 32, gl),
                    "true phase, no iteration (the magnitude's ceiling)": _fgla(mag, true, 0, gl)}
            if vocos is not None:
                _, ph = vocos.spectrum(mel)
                outs["vocos alone"] = vocos(mel)
                outs["griffin-lim 32 it. from the vocos phase"] = _fgla(mag, torch.exp(1j * ph), 32, gl)
        for k, w in outs.items():
            scores.setdefault(k, []).append(M.pesq_wb(x, w[0].numpy()[: x.shape[0]]))
    for k, v in scores.items():
        print(f"{np.mean(v):.3f}  {k}")


if __name__ == "__main__":
    main(sys.argv[1:])

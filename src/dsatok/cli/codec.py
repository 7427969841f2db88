"""``dsatok encode | decode | reconstruct | recombine | enhance | info``: thin wrappers over :class:`DSATokenizer`.

Inputs may be files, directories (searched for audio / token files) or both; each file is
processed on its own, a bad one (of any kind) is reported on one line and skipped, the others
finish, and the exit status is 1 when any failed. A file found in a sub-directory of an input
directory keeps that sub-directory under the output directory. The device and the outputs are
checked before the model is loaded; outputs are written atomically and follow the umask.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

AUDIO_EXT = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
TOKEN_EXT = ".dsatok"


def positive_int(s: str) -> int:
    """argparse type: an integer >= 1 (so a bad value is a usage error, not a traceback)."""
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{s}'") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def finite_float(s: str) -> float:
    """argparse type: a finite number."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{s}'") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {s}")
    return v


def unit_interval(s: str) -> float:
    """argparse type: a number in [0, 1)."""
    v = finite_float(s)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {v}")
    return v


def float_list(s: str) -> tuple[float, ...]:
    """argparse type: a non-empty comma list of finite numbers."""
    try:
        vals = tuple(finite_float(v) for v in s.split(",") if v.strip())
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a comma list of finite numbers, got '{s}'") from None
    if not vals:
        raise argparse.ArgumentTypeError(f"expected a comma list of finite numbers, got '{s}'")
    return vals


def add_decode_args(p: argparse.ArgumentParser, stored: bool = False) -> None:
    """``--steps`` and the guidance flags: per call (default: the model's), or with ``stored`` the
    defaults an export writes into the model."""
    from ..options import DecodeOptions

    tail = " stored with the model" if stored else " (default: the model's)"
    p.add_argument("--steps", type=positive_int, default=DecodeOptions.steps if stored else None,
                   help="ODE steps" + tail)
    add_guidance_args(p, stored)
    if stored:
        p.add_argument("--prior-only", action="store_true", default=False,
                       help="decode the semantic prior's mel estimate alone, no flow steps (decoders with a prior)"
                       " stored with the model")
    else:
        p.add_argument("--prior-only", action=argparse.BooleanOptionalAction, default=None,
                       help="decode the semantic prior's mel estimate alone, no flow steps (decoders with a prior); "
                       "--no-prior-only runs the flow where the model's default is the prior alone (default: the model's)")
        p.add_argument("--refine", action=argparse.BooleanOptionalAction, default=None,
                       help="prior-only decodes: pass the prior's mel through the model's mel refiner when it has "
                            "one (default: the model's; --no-refine: the prior's mel as it is)")


def add_guidance_args(p: argparse.ArgumentParser, stored: bool = False) -> None:
    """``--cfg --voice-cfg --content-cfg`` (see :func:`add_decode_args`)."""
    from ..options import DecodeOptions

    d = (DecodeOptions.cfg_scale, DecodeOptions.voice_cfg, DecodeOptions.content_cfg) if stored else (None,) * 3
    tail = " stored with the model" if stored else " (default: the model's)"
    p.add_argument("--cfg", type=finite_float, default=d[0], help="classifier-free guidance scale" + tail)
    p.add_argument("--voice-cfg", type=finite_float, default=d[1],
                   help="extra guidance towards the acoustic tokens' voice, 0: off" + tail)
    p.add_argument("--content-cfg", type=finite_float, default=d[2],
                   help="extra guidance towards the semantic tokens' content, 0: off" + tail)


def model_arg(spec: str) -> str:
    """``--model`` values: a bundled name (``dsa``, ``dasheng``) becomes its directory; a missing
    bundled model is an argparse error (one line), any other value a directory checked on load."""
    from ..resources import BUNDLED_MODELS, resolve_model

    if spec in BUNDLED_MODELS:
        try:
            return str(resolve_model(spec))
        except FileNotFoundError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return spec


MODEL_HELP = "dsa (default: the bundled DSA-Tokenizer), dasheng (the bundled DashengTokenizer) or a model directory"


def _common(p: argparse.ArgumentParser, decode: bool = True) -> None:
    p.add_argument("--model", type=model_arg, default=None, help=MODEL_HELP)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--vocoder", default=None,
                   help="override the model's vocoder: a Vocos directory, 'griffinlim' or 'griffinlim:N' (N iterations)")
    if decode:
        add_decode_args(p)
        p.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same output)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="audio files -> token files (.dsatok), or latent files (.dslat) with a "
                                      "DashengTokenizer --model")
    p.add_argument("inputs", nargs="+", help="audio files or directories")
    p.add_argument("-o", "--out", required=True, help="output directory")
    p.add_argument("--part", default="unified", choices=("unified", "semantic", "acoustic"),
                   help="which DashengTokenizer latent to write (only unified decodes back to audio)")
    _common(p, decode=False)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="token files (or a DashengTokenizer's latent files) -> WAV files")
    p.add_argument("inputs", nargs="+", help=".dsatok (or .dslat) files or directories")
    p.add_argument("-o", "--out", required=True, help="output directory")
    _common(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("reconstruct", help="encode then decode one file")
    p.add_argument("input", help="audio file")
    p.add_argument("-o", "--out", required=True, help="output WAV")
    _common(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("recombine", help="what CONTENT says, in the voice of VOICE")
    p.add_argument("content", help="audio file giving the semantic tokens (what is said)")
    p.add_argument("voice", help="audio file giving the acoustic tokens (how it sounds)")
    p.add_argument("-o", "--out", required=True, help="output WAV")
    p.add_argument("--plot", default=None, help="also write a PNG of the three mel spectrograms")
    _common(p)
    p.set_defaults(func=cmd_recombine)

    p = sub.add_parser("export", help="assemble a model directory from a stage-2 export and a vocoder, or export "
                                      "one training checkpoint of a vocoder / dasheng run")
    p.add_argument("stage2", help="stage-2 export (RUN/best or RUN/final) or a training checkpoint (RUN/checkpoints/step-N) "
                                  "of a stage-1, stage-2, vocoder, dasheng or refiner run (all but stage 2 are written as they are)")
    p.add_argument("-o", "--out", required=True, help="model directory to write")
    p.add_argument("--vocoder", default="griffinlim",
                   help="vocoder export directory, 'griffinlim' or 'griffinlim:N' (N iterations, default 32)")
    add_decode_args(p, stored=True)
    p.add_argument("--solver", default="euler", choices=["euler", "midpoint"])
    p.add_argument("--semantic", default="",
                   help="semantic tokenizer to package with a stage-2 checkpoint whose run config names none "
                        "(a run trained from a pack made with it)")
    p.add_argument("--gl-iterations", type=int, default=None,
                   help="Griffin-Lim iterations of the written vocoder when it uses them (phase 'griffinlim' "
                        "or 'refine'; default: as trained)")
    p.add_argument("--refiner", default="",
                   help="mel refiner to package (dsatok train refiner: RUN/final or RUN/best); 'none' drops the "
                        "source model's refiner (default: keep it)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("enhance", help="denoise speech files with a latent enhancer (dsatok train enhance)")
    p.add_argument("inputs", nargs="+", help="audio files or directories")
    p.add_argument("-o", "--out", required=True, help="output directory (one WAV per input)")
    p.add_argument("--model", default=None,
                   help="enhancer directory (default: the enhancer bundled with the dasheng model)")
    p.add_argument("--steps", type=positive_int, default=None, help="ODE steps (default: the model's default_steps)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same output)")
    p.add_argument("--start", type=unit_interval, default=0.0, help="warm start from the noisy latent at this flow time (0..1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_enhance)

    p = sub.add_parser("info", help="describe a model")
    p.add_argument("model_dir", nargs="?", type=model_arg, default=None, help=MODEL_HELP)
    p.add_argument("--preset", default=None, choices=("tiny", "paper"),
                   help="instead of a model: parameter counts of a stage-2 training preset (built, not loaded)")
    p.set_defaults(func=cmd_info)


def check_device(device: str) -> str:
    """``device`` if this machine has it (``cpu``, ``cuda``, ``cuda:N``, ``mps``), else a one-line
    CLIError, so that a bad ``--device`` is refused before any model is loaded."""
    import torch

    from .main import CLIError

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise CLIError(f"--device {device}: not a device (cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CLIError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CLIError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise CLIError(f"--device {device}: MPS is not available on this machine (use --device cpu)")
    elif dev.type != "cpu":
        raise CLIError(f"--device {device}: unsupported device type '{dev.type}' (cpu, cuda, cuda:N or mps)")
    return device


def _writable_dir(d: Path, what: str) -> None:
    """Create ``d`` (and parents) if missing and prove it writable with a probe file; else a
    one-line CLIError starting with ``what``."""
    import tempfile

    from .main import CLIError

    if d.exists() and not d.is_dir():
        raise CLIError(f"{what}: {d} exists and is not a directory")
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=d):
            pass
    except OSError as e:
        raise CLIError(f"{what}: cannot write in {d} ({e.strerror or type(e).__name__})") from None


def check_outputs(dirs: Iterable[str] = (), files: Iterable[str | None] = ()) -> None:
    """Before any model is loaded: each output directory, and each output file's directory, exists
    (created if missing) and is writable; an output file is not an existing directory."""
    from .main import CLIError

    for d in dirs:
        _writable_dir(Path(d), f"output directory {d}")
    for f in files:
        if f is None:
            continue
        p = Path(f)
        if p.is_dir():
            raise CLIError(f"output file {p}: is a directory")
        _writable_dir(p.parent, f"output file {p}")


def load_model(a: argparse.Namespace, out_dirs: Iterable[str] = (), out_files: Iterable[str | None] = ()):
    """The model of ``--model`` on ``--device``, after the device and the outputs are checked (cheap
    failures first: loading takes seconds)."""
    check_device(a.device)
    check_outputs(out_dirs, out_files)
    from ..tokenizer import DSATokenizer

    return DSATokenizer.from_pretrained(a.model, device=a.device, vocoder=a.vocoder)


def model_kind(model: str | None) -> str:
    """``"dasheng"`` when ``model`` is a DashengTokenizer directory, else ``"dsa"`` (the bundled model,
    or any other directory, which :func:`load_model` then checks)."""
    if not model:
        return "dsa"
    try:
        kind = json.loads((Path(model) / "config.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return "dsa"
    return "dasheng" if kind == "dsatok-dasheng" else "dsa"


def load_dasheng(a: argparse.Namespace, out_dirs: Iterable[str] = ()):
    """The DashengTokenizer of ``--model`` on ``--device`` (outputs and device checked first)."""
    check_device(a.device)
    check_outputs(out_dirs, ())
    if getattr(a, "vocoder", None):
        from ..config import ConfigError

        raise ConfigError("--vocoder: a DashengTokenizer decodes with its own decoder")
    from ..dasheng_tokenizer import DashengTokenizer

    return DashengTokenizer.from_pretrained(a.model).to(a.device)


def guidance_kw(a: argparse.Namespace) -> dict:
    """The guidance flags as ``decode`` keyword arguments (None: the model's default)."""
    return {"cfg_scale": a.cfg, "voice_cfg": a.voice_cfg, "content_cfg": a.content_cfg}


def _decode_kw(a: argparse.Namespace) -> dict:
    return {"steps": a.steps, **guidance_kw(a), "seed": a.seed,
            **{k: getattr(a, k) for k in ("prior_only", "refine") if getattr(a, k, None) is not None}}


def expand(inputs: Iterable[str], exts: tuple[str, ...], out_ext: str = "") -> list[tuple[Path, str]]:
    """``(input file, output name)`` pairs: files as given (output ``stem + out_ext``), plus matching
    files found recursively in directories (sorted; output ``relative/dir/stem + out_ext``, so files
    of the same name in different sub-directories do not overwrite each other)."""
    out: list[tuple[Path, str]] = []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts)
            out += [(f, str(f.relative_to(p).with_suffix("")) + out_ext) for f in found]
            if not found:
                out.append((p, ""))  # reported when processed: no input files in it
        else:
            out.append((p, p.stem + out_ext))  # a missing file is reported when processed
    return out


def for_each(items: list[tuple[Path, str]], fn: Callable[[Path, str], None], desc: str, quiet: bool,
             exts: tuple[str, ...] = ()) -> int:
    """Run ``fn(input, output name)`` on every item with a progress bar. A bad item (of any kind:
    unreadable, malformed, made by another model, unwritable output, an error inside the model) is
    reported in one line and skipped, and the others finish; two inputs that would write the same
    output are both kept by skipping the second. Exit code: 1 when any item failed."""
    from tqdm import tqdm

    from ..audio import AudioError
    from ..config import ConfigError
    from ..models.io import ModelLoadError
    from ..latents import LatentFileError
    from ..tokens import TokenFileError

    own = (AudioError, TokenFileError, LatentFileError, ModelLoadError, ConfigError)
    failed = 0
    written: dict[str, Path] = {}

    def report(f: Path, msg: str) -> None:
        nonlocal failed
        failed += 1
        tqdm.write(f"dsatok: skipped {msg}" if msg.startswith(str(f)) else f"dsatok: skipped {f}: {msg}",
                   file=sys.stderr)

    for f, name in tqdm(items, desc=desc, unit="file", disable=quiet or len(items) < 2, file=sys.stderr):
        if not name:
            report(f, f"no {' / '.join(exts) or 'input'} files in this directory")
            continue
        if name in written:
            report(f, f"its output {name} would overwrite that of {written[name]}")
            continue
        written[name] = f
        try:
            fn(f, name)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - one bad item must not stop the batch
            msg = str(e).splitlines()[0] if str(e) else ""
            report(f, msg if isinstance(e, own) and msg else f"{type(e).__name__}: {msg}".rstrip(": "))
    if failed:
        print(f"dsatok: {failed} of {len(items)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_encode(a: argparse.Namespace) -> int:
    from ..latents import LATENT_EXT

    out = Path(a.out)
    if model_kind(a.model) == "dasheng":
        dasheng = load_dasheng(a, out_dirs=[a.out])
        return for_each(expand(a.inputs, AUDIO_EXT, LATENT_EXT),
                        lambda f, name: dasheng.encode_latents(f, a.part).save(out / name), "encode", a.quiet, AUDIO_EXT)
    if a.part != "unified":
        from ..config import ConfigError

        raise ConfigError(f"--part {a.part}: only a DashengTokenizer (--model DIR) writes latents")
    model = load_model(a, out_dirs=[a.out])

    def one(f: Path, name: str) -> None:
        model.encode(f).save(out / name)

    return for_each(expand(a.inputs, AUDIO_EXT, TOKEN_EXT), one, "encode", a.quiet, AUDIO_EXT)


def cmd_enhance(a: argparse.Namespace) -> int:
    import torch

    from ..audio import load, save
    from ..models.enhancer import SpeechEnhancer

    check_outputs([a.out])
    enh = SpeechEnhancer.from_pretrained(a.model)
    out = Path(a.out)

    def one(f: Path, name: str) -> None:
        x = load(f)
        if len(x) < 640:
            raise ValueError(f"{f}: shorter than one latent frame (40 ms)")
        save(out / name, enh.enhance(torch.from_numpy(x), steps=a.steps, seed=a.seed, start=a.start))

    return for_each(expand(a.inputs, AUDIO_EXT, ".wav"), one, "enhance", a.quiet, AUDIO_EXT)


def cmd_decode(a: argparse.Namespace) -> int:
    """Token files (DSA) or latent files (Dasheng) -> one WAV per item; the other kind of file is refused."""
    from ..audio import save
    from ..latents import LATENT_EXT, LatentFileError, Latents
    from ..tokens import TokenFileError, Tokens

    out = Path(a.out)
    if model_kind(a.model) == "dasheng":
        model = load_dasheng(a, out_dirs=[a.out])
        own, other = LATENT_EXT, TOKEN_EXT
        refusal = TokenFileError, "a DSA token file; decode it with a DSA model, not a DashengTokenizer"
        read, check, decode = Latents.load, model.check_latents, model.decode_latents
    else:
        model = load_model(a, out_dirs=[a.out])
        own, other = TOKEN_EXT, LATENT_EXT
        refusal = LatentFileError, "a DashengTokenizer latent file; decode it with --model dasheng (or its directory)"
        read, check, decode = Tokens.load, model.check_tokens, lambda t: model.decode(t, **_decode_kw(a))

    def one(f: Path, name: str) -> None:
        if f.suffix.lower() == other:
            raise refusal[0](f"{f}: {refusal[1]}")
        item = read(f)
        check(item, str(f))
        wavs = decode(item)
        for i, w in enumerate(wavs):
            save(out / (name + (f"_{i}" if len(wavs) > 1 else "") + ".wav"), w, model.sample_rate)

    exts = (own, other)
    return for_each(expand(a.inputs, exts), one, "decode", a.quiet, exts)


def cmd_reconstruct(a: argparse.Namespace) -> int:
    from ..audio import save

    if model_kind(a.model) == "dasheng":
        check_outputs((), [a.out])
        dasheng = load_dasheng(a)
        (w,) = dasheng.reconstruct(a.input)
        save(a.out, w, dasheng.sample_rate)
        print(a.out)
        return 0
    model = load_model(a, out_files=[a.out])
    (w,) = model.reconstruct(a.input, **_decode_kw(a))
    save(a.out, w, model.sample_rate)
    print(a.out)
    return 0


def cmd_recombine(a: argparse.Namespace) -> int:
    from ..audio import save

    model = load_model(a, out_files=[a.out, a.plot])
    (w,) = model.recombine(a.content, a.voice, **_decode_kw(a))
    save(a.out, w, model.sample_rate)
    if a.plot:
        plot_recombination(model, a.content, a.voice, w, a.plot)
    print(a.out)
    return 0


def plot_recombination(model, content: str, voice: str, out_wav, png: str, target: str | None = None) -> None:
    """A PNG of the log-mels of content source, voice source, output (and the true target if known)."""
    import torch

    from ..audio import MelFrontend, load
    from ..eval.plots import plot_mels

    fe = MelFrontend(model.decoder.cfg.mel)
    panels = {f"content source ({Path(content).name})": load(content), f"voice source ({Path(voice).name})": load(voice),
              "output: content in the voice of the voice source": out_wav.numpy()}
    if target:
        panels[f"true target ({Path(target).name})"] = load(target)
    plot_mels({k: fe(torch.as_tensor(v))[0][0].numpy() for k, v in panels.items()}, png)


def _run_stage(run_cfg: Path):
    """``(name, config, task)`` of the training run whose ``config.json`` is ``run_cfg``. The stage is
    the one whose config class alone has some of the file's top-level keys (``acoustic`` for stage 2,
    ``segment_seconds`` for the vocoder, ``segment_frames`` for Dasheng, ...); the file is then loaded
    strictly, so a bad value or an unknown key in it is reported with its own message."""
    import dataclasses

    from ..config import ConfigError
    from ..train.acoustic import AcousticStageConfig, AcousticTask
    from ..train.config import load_config
    from ..train.dasheng import DashengStageConfig, DashengTask
    from ..train.refiner import RefinerStageConfig, RefinerTask
    from ..train.semantic import SemanticStageConfig, SemanticTask
    from ..train.vocoder import VocoderStageConfig, VocoderTask

    stages = (("stage2", AcousticStageConfig, AcousticTask), ("vocoder", VocoderStageConfig, VocoderTask),
              ("dasheng", DashengStageConfig, DashengTask), ("stage1", SemanticStageConfig, SemanticTask),
              ("refiner", RefinerStageConfig, RefinerTask))
    try:
        data = json.loads(run_cfg.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{run_cfg}: cannot read the run config ({str(e).splitlines()[0]})") from None
    keys = set(data) if isinstance(data, dict) else set()
    fields = {name: {f.name for f in dataclasses.fields(cls)} for name, cls, _ in stages}
    hits = [(name, cls, task) for name, cls, task in stages
            if keys & (fields[name] - set().union(*(v for k, v in fields.items() if k != name)))]
    if len(hits) != 1:
        raise ConfigError(f"{run_cfg}: not the config of a stage-1, stage-2, vocoder, dasheng or refiner run")
    name, cls, task = hits[0]
    return name, load_config(cls, run_cfg), task


def _json_or_empty(p: Path) -> dict:
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cmd_export(a: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..models.refiner import MelRefiner
    from ..models.vocoder import gl_iterations_config, with_gl_iterations
    from ..tokenizer import DecodeOptions, DSATokenizer

    stage2 = Path(a.stage2)
    opts = DecodeOptions(steps=a.steps, cfg_scale=a.cfg, solver=a.solver, voice_cfg=a.voice_cfg,
                         content_cfg=a.content_cfg, prior_only=a.prior_only)
    if (stage2 / "state.pt").is_file():  # a training checkpoint: export its (EMA) weights first
        import dataclasses
        import tempfile

        from ..train.engine import export_checkpoint

        run_cfg = stage2.parent.parent / "config.json"
        if not run_cfg.is_file():
            raise FileNotFoundError(f"{stage2}: no run config at {run_cfg}")
        name, cfg, task = _run_stage(run_cfg)
        if getattr(cfg, "init_from", ""):  # the checkpoint holds every weight: its starting point is not needed
            cfg = dataclasses.replace(cfg, init_from="")
        if a.gl_iterations is not None and name != "stage2":
            if name != "vocoder":
                raise ConfigError(f"{stage2}: --gl-iterations applies to a vocoder, not a {name} run")
            try:
                cfg = dataclasses.replace(cfg, model=gl_iterations_config(cfg.model, a.gl_iterations))
            except ConfigError as e:
                raise ConfigError(f"{stage2}: {e}") from None
        if name != "stage2":  # a stage-1, vocoder or Dasheng checkpoint is its own model directory
            export_checkpoint(task(cfg), stage2, a.out)
            print(json.dumps({"model": a.out, "stage": name, "checkpoint": str(stage2)}, indent=1))
            return 0
        cfg = dataclasses.replace(cfg, speaker_loss=False, semantic=a.semantic or cfg.semantic)
        if not cfg.semantic:
            raise ConfigError(f"{run_cfg}: the run names no semantic tokenizer (trained from a pack); "
                              f"give the one its pack was made with: --semantic DIR")
        with tempfile.TemporaryDirectory(prefix="dsatok-export-") as tmp:
            export_checkpoint(task(cfg), stage2, tmp)
            m = DSATokenizer.from_parts(tmp, a.vocoder, opts)
    else:
        if a.semantic:
            raise ConfigError(f"{stage2}: --semantic applies to a training checkpoint (RUN/checkpoints/step-N)")
        if stage2.is_dir() and not (stage2 / "semantic").is_dir():
            raise ConfigError(f"{stage2}: no semantic/ (a run trained from a pack); export one of its checkpoints "
                              f"with --semantic DIR")
        meta = _json_or_empty(stage2 / "config.json")  # a model directory: its own word on its refiner
        m = DSATokenizer.from_parts(stage2, a.vocoder, opts, refiner=meta.get("refiner") if "refiner" in meta else None)
    if a.refiner:
        m.set_refiner(None if a.refiner == "none" else MelRefiner.from_pretrained(a.refiner))
    if a.gl_iterations is not None:
        try:
            m.vocoder = with_gl_iterations(m.vocoder, a.gl_iterations)
        except ConfigError as e:
            raise ConfigError(f"vocoder {a.vocoder}: {e}") from None
    m.save_pretrained(a.out)
    print(json.dumps({"model": a.out, **m.info()}, indent=1))
    return 0


#: the seed (appendix C.1): "The DSA-Tokenizer has a parameter size of approximately 430M"
PAPER_PARAMS = 430e6


def preset_parameters(preset: str) -> dict:
    """Parameter counts of the acoustic tokenizer and decoder of a stage-2 ``preset`` (random weights)."""
    import torch

    from ..config import from_dict
    from ..models.acoustic import AcousticTokenizer
    from ..models.flow_decoder import FlowDecoder
    from ..train.acoustic import ACOUSTIC_PRESETS, AcousticStageConfig

    cfg = from_dict(AcousticStageConfig, {k: v for k, v in ACOUSTIC_PRESETS[preset].items() if k != "train"})
    parts = {"acoustic": AcousticTokenizer(cfg.acoustic)}  # FSQ needs real tensors at construction
    with torch.device("meta"):  # shapes only: the paper decoder needs no memory
        parts["decoder"] = FlowDecoder(cfg.decoder)
    counts = {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()}
    total = sum(counts.values())
    return {"preset": preset, "parameters": counts, "total": total, "total_millions": round(total / 1e6, 1),
            "paper_total_millions": PAPER_PARAMS / 1e6, "ratio_to_paper": round(total / PAPER_PARAMS, 3)}


def describe_model_dir(model_dir: str | Path) -> dict | None:
    """What :meth:`DSATokenizer.info` says of ``model_dir``, read from its ``config.json`` files and
    the safetensors headers alone (no torch, no weights: milliseconds). ``None`` when a field is
    missing (an older export): the caller then loads the model."""
    import math
    import struct

    d = Path(model_dir)
    try:
        meta = json.loads((d / "config.json").read_text())
        parts = {k: json.loads((d / k / "config.json").read_text())["config"] for k in ("semantic", "acoustic", "decoder")}
        if meta.get("kind") != "dsatok-tokenizer":
            return None
        params = {}
        gl = str(meta["vocoder"]).startswith("griffinlim")
        refiner = bool(meta.get("refiner", False))
        for k in ("semantic", "acoustic", "decoder", *(() if gl else ("vocoder",)), *(("refiner",) if refiner else ())):
            with open(d / k / "model.safetensors", "rb") as f:
                header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
            params[k] = sum(math.prod(v["shape"]) for n, v in header.items() if n != "__metadata__")
        params.setdefault("vocoder", 0)
        from ..options import DecodeOptions

        decode = dataclasses.asdict(DecodeOptions(**meta.get("decode", {})))
        fr, cb = meta["frame_rates"], meta["codebook_sizes"]
        return {"fingerprint": meta["fingerprint"], "sample_rate": int(parts["decoder"]["mel"]["sample_rate"]),
                "frame_rates_hz": {"semantic": fr[0], "acoustic": fr[1]},
                "codebook_sizes": {"semantic": cb[0], "acoustic": cb[1]},
                "acoustic_layers": int(parts["acoustic"]["fsq_layers"]), "bitrate_bps": round(meta["bitrate"], 1),
                "semantic_backend": parts["semantic"]["backend"], "vocoder": "GriffinLim" if gl else "VocosVocoder",
                "refiner": refiner, "parameters": params, "decode": decode}
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error):
        return None  # anything unusual: the full load reports it properly


def cmd_info(a: argparse.Namespace) -> int:
    if a.preset:
        print(json.dumps(preset_parameters(a.preset), indent=1))
        return 0
    from ..resources import default_model_dir

    d = a.model_dir or str(default_model_dir())
    info = describe_model_dir(d)
    if info is None and model_kind(d) == "dasheng":
        from ..dasheng_tokenizer import DashengTokenizer

        info = DashengTokenizer.from_pretrained(d).info()
    if info is None:
        from ..tokenizer import DSATokenizer

        info = DSATokenizer.from_pretrained(d).info()
    print(json.dumps({"model": d, **info}, indent=1))
    return 0

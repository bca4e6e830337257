# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""What the subcommands share: their options (checked by argparse, so a bad value is a usage error, exit status 2),
finding and loading the model as pipelines, and reading and writing the user's files (one line naming the file when
that fails; every file written atomically)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

import torch

if TYPE_CHECKING:
    import PIL.Image
    from diffusers import DiffusionPipeline

    from diffusers_llada_uni import LLaDAUniDecoderPipeline


DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
RANDOM_WEIGHTS_BANNER = (
    "NOTE: this model has RANDOM weights (a tiny demo model); its images and text are noise, not results."
)


class CommandError(Exception):
    """A failure already phrased for the user as one line (it names the file and the problem)."""


def _device(value: str) -> str:
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"invalid device {value!r}; use e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"device {value!r} requested but CUDA is not available here; use 'cpu'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"device {value!r} requested but MPS is not available here; use 'cpu'")
    return str(device)


def number_in_range(kind: type[int] | type[float], low: float | None = None, high: float | None = None, *,
                    low_inclusive: bool = True, high_inclusive: bool = True,
                    expected: str | None = None) -> Callable[[str], int | float]:
    """An argparse `type=` that parses an int or float and checks it lies in the given range (bounds optional)."""
    if expected is None:
        parts = []
        if low is not None:
            parts.append(f"{'>=' if low_inclusive else '>'} {low}")
        if high is not None:
            parts.append(f"{'<=' if high_inclusive else '<'} {high}")
        expected = f"{'an integer' if kind is int else 'a number'} {' and '.join(parts)}".strip()

    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {value!r}; expected {expected}") from None
        too_low = low is not None and (number < low if low_inclusive else number <= low)
        too_high = high is not None and (number > high if high_inclusive else number >= high)
        if too_low or too_high or number != number:  # NaN is in no range
            raise argparse.ArgumentTypeError(f"invalid value {number}; expected {expected}")
        return number

    return parse


_seed = number_in_range(int, 0)
positive_int = number_in_range(int, 0, low_inclusive=False, expected="a positive integer")
non_negative_int = number_in_range(int, 0)
positive_float = number_in_range(float, 0, low_inclusive=False)
non_negative_float = number_in_range(float, 0)
probability = number_in_range(float, 0.0, 1.0, high_inclusive=False, expected="a number in [0, 1)")


def existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is not a folder")
    return path


def existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value!r} is not a file")
    return path


def model_location(value: str) -> Path | str:
    """A folder, or a Hub repository id (`org/name`), which `open_model` finds in the local Hugging Face cache."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if Path(value).is_dir():
        return Path(value)
    try:
        validate_repo_id(value)
    except HFValidationError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a folder (nor a Hub repository id such as 'org/name')")
    return value


def add_model_option(parser: argparse.ArgumentParser, required: bool = True, default: str | None = None,
                     help_text: str | None = None) -> None:
    parser.add_argument(
        "--model",
        metavar="PATH",
        type=model_location,
        required=required,
        default=default,
        help=help_text or "a converted folder (`llada-uni convert`), a released LLaDA2.0-Uni folder, or the Hub id of "
                          "one in the local Hugging Face cache",
    )


def add_seed_option(parser: argparse.ArgumentParser,
                    help_text: str = "random seed (generation is greedy; the seed drives the decoder's noise)") -> None:
    parser.add_argument("--seed", type=_seed, default=0, help=f"{help_text} (default: 0)")


def add_device_option(parser: argparse.ArgumentParser, help_text: str = "device to run on") -> None:
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", type=_device, default=default, help=f"{help_text} (default: {default})")


def add_dtype_option(parser: argparse.ArgumentParser,
                     help_text: str = "dtype of the weights ('auto': the checkpoint's)") -> None:
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto", help=f"{help_text} (default: auto)")


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")


def add_common_options(parser: argparse.ArgumentParser, model_required: bool = True, model_default: str | None = None,
                       model_help: str | None = None) -> None:
    add_model_option(parser, required=model_required, default=model_default, help_text=model_help)
    add_seed_option(parser)
    add_device_option(parser)
    add_dtype_option(parser)
    add_progress_option(parser)


# Sampling options left unset take the model folder's generation config (`generation_config.json`), as the library
# calls do: the command line adds no defaults of its own.
FROM_CONFIG = "default: the model's generation config"


def add_generation_options(parser: argparse.ArgumentParser, steps_field: str = "steps") -> None:
    parser.add_argument("--steps", type=positive_int, default=None,
                        help=f"denoising steps per block ({FROM_CONFIG}, `{steps_field}`)")
    parser.add_argument("--block-length", type=positive_int, default=None,
                        help=f"tokens per block ({FROM_CONFIG})")


def add_decoder_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decoder", choices=("turbo", "normal"), default="turbo",
                        help="turbo: the distilled 8-step decoder; normal: the 50-step one (default: turbo)")
    parser.add_argument("--decoder-steps", type=positive_int, default=None,
                        help="DiT evaluations of the decoder (default: the decoder's own, 8 or 49)")


def seeded(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


# ---------------------------------------------------------------------------------------------------- errors


def describe(error: BaseException) -> str:
    """One line: the message, with the exception's name where the message alone may not say what went wrong."""
    text = " ".join(str(error).split())
    if isinstance(error, CommandError):
        return text
    plain = type(error).__module__ == "builtins" and isinstance(error, (ValueError, TypeError, OSError, RuntimeError))
    return text if plain and text else f"{type(error).__name__}: {text}".rstrip(": ")


def _damaged_file(folder: Path) -> tuple[Path, str] | None:
    """The first JSON or safetensors file of a model folder that cannot be read, and why."""
    from safetensors import safe_open

    for path in sorted(folder.rglob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as err:
            return path, f"not a valid JSON file ({describe(err)})"
    for path in sorted(folder.rglob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as err:  # safetensors raises its own SafetensorError
            return path, f"damaged or truncated safetensors file ({describe(err)})"
    return None


@contextmanager
def naming(path: Path | str) -> Iterator[None]:
    """Any failure inside becomes a `CommandError` that names `path` (the file or folder being read or written); for
    a folder, the damaged file inside it when one is found."""
    try:
        yield
    except CommandError:
        raise
    except Exception as err:
        text = describe(err)
        if str(path) in text:
            raise CommandError(text) from err
        damaged = _damaged_file(Path(path)) if Path(path).is_dir() else None
        if damaged is not None:
            raise CommandError(f"{damaged[0]}: {damaged[1]}") from err
        raise CommandError(f"{path}: {text}") from err


# ---------------------------------------------------------------------------------------------------- the model


def is_random_weights(path: Path) -> bool:
    """Demo models say so in their config (`llada_uni_random_weights`); the CLI then labels every output."""
    with open(Path(path) / "config.json", encoding="utf-8") as f:
        return bool(json.load(f).get("llada_uni_random_weights", False))


def resolve_model(location: Path | str) -> Path:
    """The folder of `--model`: itself, or the snapshot of a Hub id in the local cache (`HF_HUB_OFFLINE` is honoured:
    offline, nothing is downloaded)."""
    if isinstance(location, Path):
        return location
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(location))
    except Exception as err:
        if constants.HF_HUB_OFFLINE:
            raise CommandError(
                f"{location!r} is neither a folder nor a model in the local Hugging Face cache "
                f"({constants.HF_HUB_CACHE}), and HF_HUB_OFFLINE is set, so nothing is downloaded: download it first "
                f"(`hf download {location}`) or give a folder."
            ) from err
        raise CommandError(
            f"{location!r} is not a folder, and getting it from the Hub failed: {describe(err)}"
        ) from err


def open_model(args: argparse.Namespace, banner_file: TextIO = sys.stderr) -> tuple[Path, bool]:
    """`(folder, random_weights)` of `--model`; prints the random-weights banner, and silences the libraries' own
    bars with `--no-progress`."""
    path = resolve_model(args.model)
    with naming(path):
        random_weights = is_random_weights(path)
    if random_weights:
        print(RANDOM_WEIGHTS_BANNER, file=banner_file)
    if not args.progress:
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        diffusers_logging.disable_progress_bar()
    return path, random_weights


def dtype_from_name(name: str) -> torch.dtype | str:
    """A `--dtype` value (one of `DTYPE_CHOICES`) as `from_pretrained` takes it: "auto" or a torch dtype."""
    if name not in DTYPE_CHOICES:
        raise ValueError(f"dtype {name!r} is not one of {', '.join(DTYPE_CHOICES)}.")
    return "auto" if name == "auto" else getattr(torch, name)


def load_pipeline(pipeline_class: type[DiffusionPipeline], path: Path, args: argparse.Namespace,
                  decoders: Sequence[str] = (), image_tokenizer: bool = True) -> DiffusionPipeline:
    """An end-to-end pipeline of `path` with only the parts a command needs, on `--device`."""
    print(f"Loading {path} ...", file=sys.stderr)
    parts = {} if image_tokenizer else {"image_tokenizer": None}
    with naming(path):
        pipe = pipeline_class.from_pretrained(path, dtype=dtype_from_name(args.dtype), load_decoders=decoders, **parts)
    pipe.set_progress_bar_config(disable=not args.progress)
    return pipe.to(args.device)


def load_decoder(path: Path, args: argparse.Namespace) -> LLaDAUniDecoderPipeline:
    """The `--decoder` decoder pipeline of `path` alone, on `--device`."""
    from diffusers_llada_uni.pipeline_llada_uni import load_decoder_pipeline

    print(f"Loading the {args.decoder} decoder of {path} ...", file=sys.stderr)
    with naming(path):
        pipe = load_decoder_pipeline(path, args.decoder, dtype=dtype_from_name(args.dtype))
    pipe.set_progress_bar_config(disable=not args.progress)
    return pipe.to(args.device)


# ---------------------------------------------------------------------------------------------------- files


def load_picture(path: Path) -> PIL.Image.Image:
    """A picture as the image processor loads it (the project's one picture loader)."""
    from transformers_llada_uni.image_processing_llada_uni import LLaDAUniImageProcessor

    with naming(path):
        return LLaDAUniImageProcessor.load_image(path)


def image_output(value: str | Path) -> Path:
    """An image file to write; its extension picks a format PIL writes (checked before any work)."""
    from PIL import Image

    path = Path(value)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format not in Image.SAVE:
        raise CommandError(
            f"output file {str(path)!r}: PIL writes no image format with the extension {path.suffix or '(none)'!r}; "
            "use e.g. .png, .jpg or .webp."
        )
    if path.is_dir():
        raise CommandError(f"output file {str(path)!r} is a folder.")
    return path


def json_output(value: str | Path) -> Path:
    path = Path(value)
    if path.suffix.lower() != ".json":
        raise CommandError(f"output file {str(path)!r} must end in .json.")
    if path.is_dir():
        raise CommandError(f"output file {str(path)!r} is a folder.")
    return path


def write_file(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """`write(binary file)` into `path`, atomically: a failure leaves an existing file as it was."""
    from transformers_llada_uni.io_utils_llada_uni import write_file_atomically

    with naming(path):
        return write_file_atomically(path, write)


def save_image(image: PIL.Image.Image, path: Path) -> Path:
    from PIL import Image

    image_format = Image.registered_extensions()[path.suffix.lower()]
    return write_file(path, lambda file: image.save(file, format=image_format))


def save_text(path: Path, text: str) -> Path:
    return write_file(path, lambda file: file.write(text.encode("utf-8")))


def save_codes(path: Path, codes: torch.Tensor | Sequence[int], h: int, w: int, **extra: Any) -> Path:
    """Image codes as JSON (`llada-uni decode --codes` reads it back)."""
    data = {"token_ids": [int(c) for c in torch.as_tensor(codes).flatten().tolist()], "h": int(h), "w": int(w)}
    data.update(extra)
    return save_text(path, json.dumps(data, indent=1) + "\n")


def load_codes(path: Path) -> tuple[list, object, object]:
    """`(token_ids, h, w)` of a JSON codes file; whether the codes fill the grid is the decoder's check."""
    expected = 'the JSON `llada-uni t2i --save-codes` writes: {"token_ids": [codes], "h": rows, "w": columns}'
    with naming(path):
        raw = Path(path).read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not a codes file: it is binary, not {expected}.") from None
    except json.JSONDecodeError as err:
        raise CommandError(f"{path} is not a codes file: not valid JSON ({err}); expected {expected}.") from None
    if not isinstance(data, dict) or not {"token_ids", "h", "w"} <= set(data):
        raise CommandError(f"{path} is not a codes file: expected {expected}.")
    return data["token_ids"], data["h"], data["w"]

"""What the benchmark scripts share: a randomly initialised copy of a model from its config and tokenizer alone,
the device a run asked for, and the GPU's peak bf16 rate for the model FLOPs utilisation."""

from __future__ import annotations

import shutil
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".index.json")

# Dense bf16 tensor-core peak in TFLOP/s (no sparsity), by a substring of torch.cuda.get_device_name(); the
# first match wins, so the more specific names come first.
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)


def peak_tflops(device_name: str | None) -> float | None:
    if not device_name:
        return None
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def build_random_model(src: str | Path, dst: str | Path, *, num_layers: int | None = None, dtype: str = "float32",
                       seed: int = 0, overrides: dict | None = None) -> Path:
    """A model directory at `dst` with random weights from `src`'s config.json, and `src`'s tokenizer and
    generation config: throughput does not depend on the weight values, so no weights need to travel.
    `num_layers` shrinks the model (for quick checks on CPU); `overrides` sets config keys, e.g. another
    size of the same family (SmolLM2-1.7B is SmolLM2-135M's config with hidden_size=2048, ...)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    src, dst = Path(src), Path(dst)
    if not (src / "config.json").exists():
        raise SystemExit(f"--random-init {src}: no config.json there")
    config = AutoConfig.from_pretrained(src)
    for key, value in (overrides or {}).items():
        if not hasattr(config, key):
            raise SystemExit(f"--set {key}: {src / 'config.json'} has no such key")
        setattr(config, key, value)
    if num_layers:
        config.num_hidden_layers = num_layers
        if getattr(config, "layer_types", None):
            config.layer_types = list(config.layer_types)[:num_layers]
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model = model.to(getattr(torch, dtype))
    model.config.dtype = dtype  # what from_pretrained(dtype="auto") will load it as
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst)
    for f in src.iterdir():
        if f.is_file() and f.name != "config.json" and not f.name.endswith(WEIGHT_SUFFIXES):
            shutil.copy2(f, dst / f.name)
    return dst



def run_child(name: str, code: str, params: dict, timeout: float, env: dict,
              python: str | None = None) -> tuple[dict | None, str | None]:
    """Run a benchmark's child `code` (a `python -c` program that reads its JSON params from argv[1] and prints
    one JSON line last) in a fresh process of `python` (default: this one): (its result, None), or (None, why
    it failed) after printing the tail of its stderr. A fresh process per measurement keeps peak memory and
    warm caches apart."""
    import json
    import subprocess
    import sys

    try:
        proc = subprocess.run([python or sys.executable, "-c", code, json.dumps(params)], capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-1500:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        print(f"{name}: TIMEOUT after {timeout:.0f} s\n{tail}", file=sys.stderr, flush=True)
        return None, f"timeout after {timeout:.0f} s"
    if proc.returncode != 0:
        print(f"{name}: FAILED (exit {proc.returncode})\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"exit {proc.returncode}: {last[:300]}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def add_model_options(parser) -> None:
    """The options that choose a benchmark's model: a directory, or random weights from a config."""
    parser.add_argument("--model", help="an HF model directory (default: build the tiny test model)")
    parser.add_argument("--random-init", metavar="DIR",
                        help="build the model with random weights from DIR's config.json and tokenizer files")
    parser.add_argument("--num-layers", type=int, help="with --random-init: keep only this many layers (quick checks)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", type=key_value,
                        help="with --random-init: config keys to change, e.g. hidden_size=2048 (another model size)")


def check_model_options(parser, args) -> None:
    """Options that would be silently ignored are errors: --set and --num-layers shape a --random-init model only."""
    if args.model and args.random_init:
        parser.error("--model and --random-init exclude each other")
    if not args.random_init:
        given = [name for name, value in (("--set", args.set), ("--num-layers", args.num_layers)) if value]
        if given:
            parser.error(f"{', '.join(given)}: only with --random-init DIR (the config that the model is built from)")


def key_value(text: str) -> tuple[str, object]:
    """`KEY=VALUE` with VALUE read as JSON where it parses (numbers, booleans), else as a string."""
    import argparse
    import json

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def method_spec(text: str) -> tuple[str, dict]:
    """`NAME` or `NAME:KEY=VALUE,...` (e.g. `lora:dropout=0`): a registered method and its checked hyperparameters,
    so that a misspelt method or key stops the benchmark before any model is built."""
    import argparse

    from forgetbench.errors import ConfigError
    from forgetbench.methods import get_method

    name, _, given = text.partition(":")
    try:
        method = get_method(name, where=f"--methods {text}")
        if method.kind != "train":
            raise ConfigError(f"--methods {text}: '{name}' is {method.kind}, not trained (nothing to time)")
        hparams = {}
        for item in filter(None, given.split(",")):
            if "=" not in item:
                raise ConfigError(f"--methods {text}: {item!r} is not KEY=VALUE")
            hparams.update([key_value(item)])
        return name, method.validate_hparams(hparams, f"--methods {text}")
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None

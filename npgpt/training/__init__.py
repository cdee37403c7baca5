"""Training a GPT-2 in NumPy: pre-training from scratch and fine-tuning, on one text file.

The modules, in the order a step uses them:

    data.py        the corpus download, the held-out split, token ids, random batches of windows
    bpe.py         learning a byte-level BPE vocabulary from the training text
    step.py        one step: forward with the activations kept, cross-entropy, backward, AdamW
    backward.py    the backward pass, one function per forward function of ``npgpt/model.py``
    optim.py       AdamW, gradient clipping, the warm-up + cosine learning rate
    checkpoint.py  checkpoints that resume exactly, and the model folder a run writes
    progress.py    the progress line and the loss curve
    settings.py    ``TrainSettings``, the default shape, fine-tuning's defaults
    loop.py        ``train`` (the loop), ``pretrain`` and ``finetune`` (its entry points)

The output is an ordinary model folder (``npgpt.save``): config.json, model.safetensors,
vocab.json, merges.txt, which ``npgpt.load``, the viz and ``transformers`` read; training adds
``loss.png`` and ``train_log.json`` (settings, every evaluation, the timing) beside them.

    from npgpt.training import TrainSettings, pretrain, finetune

Leaves out: gradient accumulation, mixed precision, several data files or document boundaries,
data loading from disk as training goes, attention dropout, and multi-process training.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .data import Dataset, encode_dataset, get_batch, repeat_spans, split_text
from .loop import TrainResult, copy_params, finetune, pretrain, train
from .progress import format_duration, plot_losses
from .settings import DEFAULT_CONFIG, FINETUNE_SETTINGS, TrainSettings
from .step import dropout_masks, evaluate, loss_and_grads, nats_per_char, sample_text, train_step

__all__ = [
    "load_checkpoint", "save_checkpoint", "Dataset", "encode_dataset", "get_batch", "repeat_spans", "split_text",
    "TrainResult", "copy_params", "finetune", "pretrain", "train", "format_duration", "plot_losses",
    "DEFAULT_CONFIG", "FINETUNE_SETTINGS", "TrainSettings", "dropout_masks", "evaluate", "loss_and_grads",
    "nats_per_char", "sample_text", "train_step",
]

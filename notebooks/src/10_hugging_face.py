# %% [markdown]
# # 10. The article's Hugging Face example, line by line
#
# **What this notebook teaches.** Articles about large language models end with a few lines of
# Hugging Face `transformers` that generate text with GPT-2:
#
# ```python
# from transformers import GPT2LMHeadModel, GPT2Tokenizer
#
# tokenizer = GPT2Tokenizer.from_pretrained("gpt2")
# model = GPT2LMHeadModel.from_pretrained("gpt2")
# input_ids = tokenizer.encode("Once upon a time", return_tensors="pt")
# output = model.generate(input_ids, max_length=50, num_return_sequences=1)
# print(tokenizer.decode(output[0], skip_special_tokens=True))
# ```
#
# Each line is a step of the earlier notebooks: `from_pretrained` reads a model folder
# (`config.json` and the weights), `encode` is the byte-level BPE of notebook 1, `generate` is the
# loop of notebook 6. Two details of that last line matter and are easy to miss:
#
# - **`max_length` counts the prompt**: `max_length=50` with a 10-token prompt generates at most
#   40 new tokens (`max_new_tokens` counts only the new ones);
# - **`generate` is greedy by default**: without `do_sample=True` it takes the most likely token
#   at every step, so it writes the same text every time.
#
# `"gpt2"` needs a download, and this notebook runs offline; but npgpt's bundled Shakespeare
# model is a folder in Hugging Face's layout, so the same lines run on it, when `transformers`
# (and `torch`) are installed. Then we make the same call in npgpt and assert that both give the
# same token ids. Without `transformers` the npgpt cells still run, and the others say what to
# install.

# %%
import json

import numpy as np

import npgpt
import npgpt.hub
from npgpt.generate import GenerationSettings, generate_ids, probabilities, process_logits

folder = npgpt.hub.resolve("shakespeare")  # where npgpt.load("shakespeare") reads from: no path typed by hand
files = sorted(p.name for p in folder.iterdir())
print(folder.name, files)
assert {"config.json", "model.safetensors", "vocab.json", "merges.txt"} <= set(files)  # Hugging Face's layout
config = json.loads((folder / "config.json").read_text())
assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
print({key: config[key] for key in ("n_layer", "n_embd", "n_head", "n_ctx", "vocab_size", "eos_token_id")})

# %% [markdown]
# ## The same lines in npgpt
#
# `npgpt.load(folder)` reads the same two files `from_pretrained` reads; the tokenizer comes from
# `vocab.json` and `merges.txt`. Then the article's `generate` call, with its two details spelled
# out: npgpt counts only new tokens (`max_new_tokens`), and **npgpt samples by default**
# (`temperature=1.0`), so greedy must be asked for with `temperature=0`.

# %%
model = npgpt.load(folder)
prompt = "ROMEO:\nWhat light through yonder window"
input_ids = model.tokenizer.encode(prompt)
max_length = 50
print(f"prompt: {len(input_ids)} tokens -> at most {max_length - len(input_ids)} new ones")

assert GenerationSettings().temperature == 1.0 and not GenerationSettings().greedy  # npgpt's default samples
result = generate_ids(model, input_ids, max_new_tokens=max_length - len(input_ids), temperature=0)
completion = result.completions[0]
npgpt_output = input_ids + completion.ids  # what transformers returns: the prompt, then the new tokens
print(f"{len(npgpt_output)} ids, finished by {completion.finish_reason!r}")
if completion.finish_reason == "length":
    assert len(npgpt_output) == max_length  # prompt + new tokens = max_length
else:  # it wrote <|endoftext|> first
    assert completion.finish_reason == "eos" and len(npgpt_output) < max_length
print(repr(model.tokenizer.decode(npgpt_output)))

# %% [markdown]
# Greedy means every new token is the argmax of the logits at the position before it. One
# forward pass over the output checks every choice at once (position `i` predicts token `i+1`,
# notebook 5), and a second call writes the same text:

# %%
logits = model.logits(npgpt_output[:-1])  # [n_seq - 1, n_vocab]
choices = logits[len(input_ids) - 1 :].argmax(axis=-1)  # the most likely token after each prefix
assert choices.tolist() == completion.ids
assert generate_ids(model, input_ids, max_new_tokens=max_length - len(input_ids), temperature=0).completions[0].ids == completion.ids
print(f"all {len(completion.ids)} new tokens are the argmax; a second run gives the same ids")

# %% [markdown]
# ## The article's lines, run by `transformers`
#
# If `transformers` is not installed, the cells below say so and do nothing
# (`pip install torch transformers` to run them). `GPT2TokenizerFast` (or `GPT2Tokenizer`, the
# slower pure-Python one of the article) reads `vocab.json` and `merges.txt` from the folder;
# `GPT2LMHeadModel` reads `config.json` and `model.safetensors`.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notice about notebook widgets
try:
    import transformers
    from transformers import GPT2LMHeadModel, GPT2TokenizerFast

    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar in the output
    hf_tokenizer = GPT2TokenizerFast.from_pretrained(folder)
    hf_model = GPT2LMHeadModel.from_pretrained(folder).eval()
except ImportError as error:
    hf_model = None
    print(f"transformers is not available ({error}): pip install torch transformers to run the Hugging Face cells; "
          "the npgpt cells above run without it")
else:
    print(f"transformers {transformers.__version__}: {type(hf_model).__name__} with {hf_model.num_parameters():,} parameters")
    assert hf_model.num_parameters() == model.config.n_params()  # the same weights, counted the same way

# %% [markdown]
# `tokenizer.encode(text, return_tensors="pt")` gives a `[batch=1, n_seq]` tensor of the same ids
# as npgpt's tokenizer.

# %%
if hf_model is not None:
    hf_input_ids = hf_tokenizer.encode(prompt, return_tensors="pt")  # [1, n_seq]
    print(hf_input_ids)
    assert hf_input_ids.shape == (1, len(input_ids))
    assert hf_input_ids[0].tolist() == input_ids
    assert hf_tokenizer.eos_token_id == model.config.eot_id  # <|endoftext|>, the last id of the vocabulary
else:
    print("skipped: transformers is not installed")

# %% [markdown]
# The article's call. Its output row holds the prompt, then the new tokens, `max_length` ids in all
# (fewer only if the model wrote `<|endoftext|>` first). Nothing asked for sampling: the model's
# generation config leaves `do_sample` unset or `False`, and `generate` then decodes greedily.

# %%
if hf_model is not None:
    print("generation_config.do_sample =", hf_model.generation_config.do_sample)
    assert hf_model.generation_config.do_sample in (None, False)  # unset: transformers' default, greedy
    output = hf_model.generate(hf_input_ids, max_length=max_length, num_return_sequences=1,
                               pad_token_id=hf_tokenizer.eos_token_id)  # [1, <= max_length]
    hf_output = output[0].tolist()
    print(output.shape)
    assert hf_output[: len(input_ids)] == input_ids  # the prompt comes back first
    assert len(hf_output) == max_length or hf_output[-1] == hf_tokenizer.eos_token_id
    assert hf_output == npgpt_output  # the same ids as npgpt's greedy generation
    assert hf_model.generate(hf_input_ids, max_new_tokens=max_length - len(input_ids),
                             pad_token_id=hf_tokenizer.eos_token_id)[0].tolist() == hf_output  # the same limit
    text = hf_tokenizer.decode(output[0], skip_special_tokens=True)
    assert text == prompt + completion.text  # npgpt's text is the new part only
    print(repr(text))
    print(f"transformers and npgpt: the same {len(hf_output)} ids")
else:
    print("skipped: transformers is not installed")

# %% [markdown]
# And the logits themselves: the two implementations agree to float32 rounding at every position
# (`tests/test_model_oracle.py` makes the same comparison for gpt2).

# %%
if hf_model is not None:
    hf_logits = hf_model(output).logits[0].detach().numpy()  # [n_seq, n_vocab]
    difference = float(np.abs(hf_logits - model.logits(hf_output)).max())
    print(f"largest difference between the logits: {difference:.1e}")
    assert difference < 1e-3
else:
    print("skipped: transformers is not installed")

# %% [markdown]
# | the article's line | what it does | npgpt |
# |---|---|---|
# | `GPT2Tokenizer.from_pretrained("gpt2")` | reads `vocab.json`, `merges.txt` | `npgpt.load(name).tokenizer` |
# | `GPT2LMHeadModel.from_pretrained("gpt2")` | reads `config.json`, the weights | `npgpt.load("gpt2")` |
# | `tokenizer.encode(text, return_tensors="pt")` | byte-level BPE, as a [1, n_seq] tensor | `model.tokenizer.encode(text)` |
# | `model.generate(input_ids, max_length=50)` | greedy, prompt + new tokens <= 50 | `generate_ids(model, ids, max_new_tokens=50 - len(ids), temperature=0)` |
# | `model.generate(..., do_sample=True)` | samples, with `top_k=50` unless told otherwise | `model.generate(text, temperature=1.0, top_k=50)` |
# | `tokenizer.decode(output[0], skip_special_tokens=True)` | ids to text, prompt included | `model.tokenizer.decode(ids)` |
#
# ## Sampling: the same distribution, other random numbers
#
# With `do_sample=True` transformers samples, and unless told otherwise it keeps only the 50 most
# likely tokens (a default `top_k=50` that npgpt does not have). Its `scores` are the processed
# logits it draws from; npgpt's `process_logits` with `top_k=50` gives the same distribution. The
# draws themselves come from torch's random generator in one and NumPy's in the other, so a seed
# in one library does not reproduce a text of the other.

# %%
if hf_model is not None:
    sampled = hf_model.generate(hf_input_ids, do_sample=True, max_new_tokens=1, output_scores=True,
                                return_dict_in_generate=True, pad_token_id=hf_tokenizer.eos_token_id)
    hf_scores = sampled.scores[0][0].numpy()  # [n_vocab]: -inf outside the tokens it may draw
    ours = process_logits(model.logits(input_ids)[-1], GenerationSettings(temperature=1.0, top_k=50), [input_ids])
    print(f"transformers may draw {np.isfinite(hf_scores).sum()} tokens; npgpt with top_k=50: {np.isfinite(ours).sum()}")
    assert np.array_equal(np.isfinite(hf_scores), np.isfinite(ours))
    assert np.isfinite(ours).sum() >= 50  # 50, or more if some tie with the 50th
    assert np.allclose(probabilities(hf_scores), probabilities(ours), atol=1e-5)  # the same distribution
else:
    print("skipped: transformers is not installed")

# %% [markdown]
# ## Exercise: greedy generation with `max_length`
#
# Write `my_greedy(model, input_ids, max_length, eos_token_id)`, the loop behind the article's
# `generate` call, using only `model.logits(ids)` (`[n_seq, n_vocab]`): take the argmax of the
# last position's logits, append it, and repeat until the sequence holds `max_length` ids,
# **prompt included**, or until you have appended `eos_token_id` (keep it, as transformers does).
# Return the whole list of ids, prompt first. `check_greedy` compares it with npgpt's greedy
# generation on a few prompts and limits. (A solution is in `notebooks/solutions/10_hugging_face.py`.)

# %%
def check_greedy(my_greedy, model=model):
    """Compare ``my_greedy`` with npgpt's greedy ``generate_ids``; True when right, else an
    AssertionError saying what is wrong."""
    tok = model.tokenizer
    first = tok.encode("ROMEO:\nWhat light through yonder window")
    second = tok.encode("First Citizen:\nBefore we proceed any further, hear me speak.")
    # an end-of-text id the greedy text reaches early: a token it writes for the first time at step >= 2
    reference = generate_ids(model, second, max_new_tokens=12, temperature=0, ignore_eos=True).completions[0].ids
    stop_id = next((t for i, t in enumerate(reference) if i >= 2 and t not in reference[:i]), reference[0])
    cases = [
        ("a 15-token budget", first, len(first) + 15, model.config.eot_id),
        ("max_length one more than the prompt", second, len(second) + 1, model.config.eot_id),
        (f"eos_token_id={stop_id}, a token the greedy text writes early", second, len(second) + 12, stop_id),
    ]
    for what, prompt_ids, max_length, eos in cases:
        new = generate_ids(model, prompt_ids, max_new_tokens=max_length - len(prompt_ids), temperature=0,
                           eos_token_id=eos).completions[0].ids
        want = list(prompt_ids) + new
        try:
            got = my_greedy(model, list(prompt_ids), max_length, eos)
        except NotImplementedError:
            print("not done yet: fill in my_greedy, then run this cell again")
            return False
        except Exception as error:
            raise AssertionError(f"{what}: your function raised {error!r}") from error
        got = [int(t) for t in got]
        where = f"{what} (prompt of {len(prompt_ids)} tokens, max_length={max_length})"
        if got == want:
            continue
        assert got[: len(prompt_ids)] == list(prompt_ids), \
            f"{where}: return the prompt followed by the new tokens, as transformers' generate does"
        assert len(got) != len(prompt_ids) + max_length or len(want) == len(got), \
            f"{where}: you returned {len(got)} ids; max_length counts the prompt too: generate at most max_length - len(input_ids) new tokens"
        for i in range(len(prompt_ids), min(len(got), len(want))):
            if got[i] != want[i]:
                row = model.logits(got[:i])
                hint = ("use the logits of the last position, model.logits(ids)[-1]" if got[i] == int(row[0].argmax())
                        else "the next token is the argmax of the last position's logits")
                raise AssertionError(f"{where}: new token {i - len(prompt_ids)} is {got[i]}, greedy chooses {want[i]}: {hint}")
        if len(got) > len(want) and want[-1] == eos:
            raise AssertionError(f"{where}: you went on after the end-of-text id {eos}; stop once you have appended it")
        if len(got) < len(want) and want[len(got)] == eos:
            raise AssertionError(f"{where}: you stopped before appending the end-of-text id {eos}; keep it as the last id")
        raise AssertionError(f"{where}: you returned {len(got)} ids, expected {len(want)}: stop at max_length ids in all "
                             f"(prompt included) or after the end-of-text id")
    print(f"correct: your greedy loop matches npgpt's generate on all {len(cases)} cases")
    return True


# %%
def my_greedy(model, input_ids, max_length, eos_token_id):
    raise NotImplementedError  # your code: ids = list(input_ids); while ...: ids.append(...); return ids


check_greedy(my_greedy);

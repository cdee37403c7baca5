# %% [markdown]
# # 1. Tokenization: from text to token ids
#
# **What this notebook teaches.** GPT-2 never sees characters. Its tokenizer, byte-level BPE,
# turns text into integers in four steps, each a small function in `npgpt/tokenizer.py`:
#
# 1. **pre-tokenize**: split the text into words, numbers, punctuation and whitespace with a regex;
# 2. **bytes**: write each piece as UTF-8 bytes, each byte shown as one printable character;
# 3. **merge**: repeatedly join the adjacent pair that was most frequent in GPT-2's training data
#    (lowest rank in `merges.txt`);
# 4. **look up** each final piece in `vocab.json`.
#
# We step through each with `Tokenizer.explain`, then see why `" hello"` and `"hello"` differ and
# how numbers and other scripts split. GPT-2's real vocabulary ships with npgpt, so everything here
# is the real GPT-2 tokenizer, whatever model you have. Every statement about an output is checked
# by an `assert` in the cell below it. At the end you write one BPE merge step yourself and
# `check_merge_step` compares it with npgpt's tokenizer.

# %%
import npgpt
from npgpt.tokenizer import bytes_to_unicode, pretokenize, to_byte_chars

tok = npgpt.Tokenizer.gpt2()
assert tok.n_vocab == 50257 and tok.eot_id == 50256  # 256 bytes + 50,000 merges + <|endoftext|>
assert len(tok.merges) == 50000
print(tok, "| <|endoftext|> is id", tok.eot_id)

# %% [markdown]
# ## Step 1: pre-tokenization
#
# A regex cuts the text into pieces; merges never cross a piece boundary. Spaces stick to the
# start of the following word, and contractions like `'s` are their own piece. Nothing is lost:
# the pieces join back into the text.

# %%
text = "Hello world! It's 2024... naïve café 🙂"
pieces = pretokenize(text)
print(pieces)
assert "".join(pieces) == text  # nothing lost
assert " world" in pieces and "'s" in pieces  # the space belongs to the next word; 's stands alone
assert [i for p in pieces for i in tok.encode(p)] == tok.encode(text)  # each piece is encoded alone

# %% [markdown]
# ## Step 2: bytes, made printable
#
# Each piece is encoded as UTF-8. BPE works on bytes, so no text can ever be "unknown": any string
# is a sequence of bytes 0-255, and each of the 256 bytes is a token. To keep the vocabulary files
# readable, each byte is written as a printable character: printable ASCII stays itself, the rest
# (space, newline, bytes of accented letters and emoji) are shifted to other characters. The
# space becomes `Ġ`, the newline `Ċ`.

# %%
byte_to_char = bytes_to_unicode()
print("256 bytes ->", len(set(byte_to_char.values())), "distinct printable characters")
for b in [ord("A"), ord(" "), ord("\n"), 0xC3, 0xF0]:
    print(f"byte {b:3d} (0x{b:02x}) -> {byte_to_char[b]!r}")
print(" café".encode(), "->", to_byte_chars(" café"))

assert len(set(byte_to_char.values())) == 256  # one character per byte, no two alike
assert byte_to_char[ord("A")] == "A" and byte_to_char[ord(" ")] == "Ġ" and byte_to_char[ord("\n")] == "Ċ"
assert all(ch in tok.encoder for ch in byte_to_char.values())  # every byte is a token: nothing is unknown
assert len(" café") == 5 and len(to_byte_chars(" café")) == 6  # "é" is two bytes
weird = "\x00\x7f tab\there \u200b zero-width, \U0001f9ec dna"
assert tok.decode(tok.encode(weird)) == weird  # any text survives the round trip

# %% [markdown]
# ## Step 3: merges by rank, and step 4: ids
#
# `explain` records every merge applied, in order, with its rank (its line in `merges.txt`).

# %%
explained = tok.explain(" hello world")
print(explained)

# %% [markdown]
# Two things to read in that output, checked below on a longer text: each merge joins the
# adjacent pair with the **lowest rank** among all pairs present at that moment; and so the ranks
# of the merges applied to a piece only go up (a pair made of a new part was learned after that
# part was). Last, every final part is a key of `vocab.json` and its value is the id.

# %%
def adjacent_pairs(parts):
    return list(zip(parts[:-1], parts[1:]))


checked = 0
for piece in tok.explain("The quick brown fox jumps over the lazy dog; tokenization, antidisestablishmentarianism").pieces:
    states = piece.steps()  # the parts before the first merge and after each merge
    for merge, before in zip(piece.merges, states):
        lowest = min(tok.ranks.get(pair, float("inf")) for pair in adjacent_pairs(before))
        assert merge.rank == lowest == tok.ranks[(merge.left, merge.right)]  # the lowest-ranked pair first
        checked += 1
    assert [m.rank for m in piece.merges] == sorted(m.rank for m in piece.merges)  # ranks only go up
    assert all(tok.ranks.get(pair) is None for pair in adjacent_pairs(states[-1]))  # stops when no pair merges
    assert list(piece.ids) == [tok.encoder[t] for t in piece.tokens]  # step 4: a dictionary lookup
print(f"{checked} merges checked: each was the lowest-ranked adjacent pair at its step")

# %% [markdown]
# ## `" hello"` is not `"hello"`
#
# Because the space belongs to the word after it, the same word has different tokens at the
# start of a text and after a space, and capitalisation matters too.

# %%
variants = ["hello", " hello", "Hello", " Hello", " HELLO"]
for word in variants:
    ids = tok.encode(word)
    print(f"{word!r:10} -> {ids} {tok.decode_tokens(ids)}")
assert len({tuple(tok.encode(w)) for w in variants}) == len(variants)  # five spellings, five different encodings
assert len(tok.encode(" hello")) == 1 and len(tok.encode(" HELLO")) > 1  # the rarer spelling takes more tokens

# %% [markdown]
# ## Numbers and other scripts
#
# Digit runs are merged by frequency, not by value: some numbers are one token, others are cut in
# arbitrary places, which is one reason GPT-2 is bad at arithmetic.

# %%
numbers = [" 1", " 42", " 1000", " 2024", " 1234", " 12345", " 3.14159"]
splits = {s: tok.decode_tokens(tok.encode(s)) for s in numbers}
for s, parts in splits.items():
    print(f"{s!r:12} -> {parts}")
assert len(splits[" 1000"]) == 1 and len(splits[" 1234"]) > 1  # the bigger number is one token, the smaller is not
assert len(splits[" 12345"]) > 1 and "".join(splits[" 12345"]) == " 12345"

# %% [markdown]
# Text in scripts that were rare in GPT-2's (mostly English) training data falls back to
# byte-level pieces: it takes many more tokens per character than English, a Chinese character is
# often two or three tokens, and a single token may hold only part of a character (shown as
# U+FFFD, `�`).

# %%
english = "Hello, world"
english_rate = len(english) / len(tok.encode(english))
print(f"{english}: {english_rate:.1f} characters per token")
for s in ["你好，世界", "Привет, мир", "مرحبا بالعالم", "👍🏽"]:
    ids = tok.encode(s)
    print(f"{s}: {len(s)} characters, {len(s.encode())} bytes -> {len(ids)} tokens {ids}")
    print("   token texts:", tok.decode_tokens(ids))
    assert len(s) / len(ids) < english_rate / 2  # fewer than half as many characters per token as English
    assert any("\ufffd" in t for t in tok.decode_tokens(ids))  # some token is part of a character
    assert tok.decode(ids) == s  # ... yet together they decode exactly
assert len(tok.encode("你好，世界")) >= 2 * len("你好，世界")  # two tokens or more per Chinese character

# %% [markdown]
# ## Decoding, and streaming
#
# `decode` joins the tokens' bytes and decodes UTF-8. When a generated token ends in the middle
# of a character, printing it alone shows a replacement character; a **stream decoder**
# holds the bytes back until the character is complete.

# %%
fish = "Fish 🐟 and chips"
ids = tok.encode(fish)
one_by_one = [tok.decode([i]) for i in ids]
dec = tok.stream_decoder()
pieces = [dec.feed(i) for i in ids] + [dec.flush()]
print("one token at a time:", one_by_one)
print("stream decoder:     ", pieces)
assert any("\ufffd" in p for p in one_by_one)  # the emoji is cut across tokens
assert not any("\ufffd" in p for p in pieces)  # the stream decoder never shows half a character
assert "".join(pieces) == tok.decode(ids) == fish

# %% [markdown]
# ## The special token
#
# `<|endoftext|>` separates documents. Text that merely *contains* that string is refused by
# default, so that pasted text cannot inject a document boundary; you choose.

# %%
try:
    tok.encode("the end<|endoftext|>")
    raise AssertionError("expected a ValueError")
except ValueError as e:
    print("error:", e)
allowed = tok.encode("the end<|endoftext|>", allowed_special={"<|endoftext|>"})
ordinary = tok.encode_ordinary("the end<|endoftext|>")
print("allowed: ", allowed)
print("ordinary:", ordinary)
assert allowed[-1] == tok.eot_id  # one special token
assert tok.eot_id not in ordinary and len(ordinary) > len(allowed)  # the same characters as plain text

# %% [markdown]
# ## The bundled model's tokenizer: the same recipe, a smaller vocabulary
#
# The Shakespeare model that ships with npgpt was trained with its own byte-level BPE, learned on
# its training text by the same algorithm (`npgpt/training/bpe.py`), with far fewer merges. A
# small vocabulary keeps the model small, but words it rarely saw are cut into many tokens.

# %%
small = npgpt.load("shakespeare").tokenizer
print(small, " vs ", tok)
for line in ["To be, or not to be: that is the question.", "The internet changed everything in 2024.", " Monday"]:
    a, b = tok.encode(line), small.encode(line)
    print(f"{line!r}\n   gpt2: {len(a):2} tokens {tok.decode_tokens(a)}\n   small: {len(b):2} tokens {small.decode_tokens(b)}")
    assert small.decode(b) == line  # the same algorithm: nothing lost
modern = "The internet changed everything in 2024."
assert small.n_vocab < tok.n_vocab and len(small.encode(modern)) > len(tok.encode(modern))

# %% [markdown]
# ## Exercise: one BPE merge step
#
# Write `my_merge_step(parts, ranks)`: `parts` is a list of strings (at first the single byte
# characters of a piece, `list(to_byte_chars(" hello"))`), `ranks` maps a pair `(left, right)` to
# its rank (`tok.ranks`). Find the adjacent pair with the **lowest rank**; if it occurs more than
# once, take the **leftmost**. Return a **new** list with that one pair joined into one string.
# When no adjacent pair is in `ranks`, return the parts unchanged: BPE is done.
#
# Repeating the step until nothing changes encodes one piece. `check_merge_step` does exactly
# that on several words (some need twenty merges or more, some repeat a pair, one is Chinese) and
# compares every step with `tok.explain`, then the final ids with `tok.encode`. (A solution is in
# `notebooks/solutions/01_tokenization.py`.)

# %%
CHECK_WORDS = [" hello", " world", " banana", " Mississippi", " tokenization", " internationalization",
               " antidisestablishmentarianism", "你好"]


def check_merge_step(my_merge_step, tok=tok, words=CHECK_WORDS):
    """Encode each word by repeating ``my_merge_step``; compare each step with ``tok.explain``. True when right."""
    ranks = tok.ranks
    for word in words:
        piece = tok.explain(word).pieces[0]
        state = list(piece.chars)
        for merge, expected in zip(piece.merges, piece.steps()[1:]):
            given = list(state)
            try:
                got = my_merge_step(given, ranks)
            except NotImplementedError:
                print("not done yet: fill in my_merge_step, then run this cell again")
                return False
            where = f"{word!r}, parts {state}"
            assert given == state, f"{where}: my_merge_step changed the list it was given; build and return a new list"
            assert isinstance(got, (list, tuple)) and all(isinstance(p, str) for p in got), \
                f"{where}: return a list of strings (the parts after one merge), not {type(got).__name__}"
            got = list(got)
            best = (merge.left, merge.right)
            assert "".join(got) == "".join(state), \
                f"{where}: your parts {got} no longer spell the word; a merge joins two neighbours, it never drops or adds characters"
            assert len(got) < len(state), \
                f"{where}: nothing was merged, but the pair {best} has rank {merge.rank}, the lowest rank of all adjacent pairs"
            if len(got) < len(state) - 1:
                everywhere = []
                for part in state:  # the pair joined at every occurrence, left to right
                    if everywhere and (everywhere[-1], part) == best:
                        everywhere[-1] += part
                    else:
                        everywhere.append(part)
                assert got != everywhere, (f"{where}: you merged every occurrence of {best} at once; merge only the leftmost one "
                                           f"per step (GPT-2's encoder.py joins them all in one turn and gets the same tokens, "
                                           f"but here each step is compared with explain())")
                raise AssertionError(f"{where}: you made {len(state) - len(got)} merges in one step; make exactly one: {state} -> {list(expected)}")
            i = next(i for i in range(len(got)) if got[i] != state[i])  # where your merge is
            yours = (state[i], state[i + 1])
            assert got == state[:i] + [state[i] + state[i + 1]] + state[i + 2:], \
                f"{where}: a merge joins two neighbouring parts into one and keeps the others as they are; you returned {got}"
            rank = ranks.get(yours)
            assert rank is not None, f"{where}: you merged {yours}, which is not in merges.txt; only pairs in ranks may merge"
            assert rank <= merge.rank, (f"{where}: you merged {yours} of rank {rank}, but {best} has a lower rank, {merge.rank}: "
                                        f"always merge the lowest rank first (learned earlier, from a more frequent pair)")
            assert got == list(expected), (f"{where}: the lowest-ranked pair {best} occurs more than once; join the leftmost "
                                           f"one first: expected {list(expected)}, got {got}")
            state = got
        try:
            last = my_merge_step(list(state), ranks)
        except Exception as e:  # noqa: BLE001 (any failure here is the learner's to see)
            raise AssertionError(f"{word!r}: at {state} no adjacent pair is in ranks; return the parts unchanged, "
                                 f"but your function raised {type(e).__name__}: {e}") from e
        assert last is not None and list(last) == state, \
            f"{word!r}: at {state} no adjacent pair is in ranks, so BPE is done: return the parts unchanged (got {last})"
        ids = [tok.encoder[p] for p in state]
        assert ids == tok.encode(word), f"{word!r}: your parts give ids {ids}; tok.encode gives {tok.encode(word)}"
    n_merges = sum(len(tok.explain(w).pieces[0].merges) for w in words)
    print(f"correct: your merge step reproduces all {n_merges} merges of {len(words)} words, and their ids")
    return True


# %%
def my_merge_step(parts, ranks):
    raise NotImplementedError  # your code: find the lowest-ranked adjacent pair, join its leftmost occurrence


check_merge_step(my_merge_step);

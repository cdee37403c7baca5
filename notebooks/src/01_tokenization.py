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
# how numbers and Chinese text split. GPT-2's real vocabulary ships with npgpt, so everything here
# is the real GPT-2 tokenizer, whatever model you have.

# %%
import npgpt
from npgpt.tokenizer import bytes_to_unicode, pretokenize

tok = npgpt.Tokenizer.gpt2()
print(tok, "| <|endoftext|> is id", tok.eot_id)

# %% [markdown]
# ## Step 1: pre-tokenization
#
# A regex cuts the text into pieces; merges never cross a piece boundary. Spaces stick to the
# start of the following word, and contractions like `'s` are their own piece.

# %%
text = "Hello world! It's 2024... naïve café 🙂"
print(pretokenize(text))

# %% [markdown]
# ## Step 2: bytes, made printable
#
# Each piece is encoded as UTF-8. BPE works on bytes, so no text can ever be "unknown": any string
# is a sequence of bytes 0-255. To keep the vocabulary files readable, each byte is written as a
# printable character: printable ASCII stays itself, the rest (space, newline, bytes of accented
# letters and emoji) are shifted to other characters. The space becomes `Ġ`, the newline `Ċ`.

# %%
byte_to_char = bytes_to_unicode()
print("256 bytes ->", len(set(byte_to_char.values())), "distinct printable characters")
for b in [ord("A"), ord(" "), ord("\n"), 0xC3, 0xF0]:
    print(f"byte {b:3d} (0x{b:02x}) -> {byte_to_char[b]!r}")
print(" café".encode(), "->", "".join(byte_to_char[b] for b in " café".encode()))

# %% [markdown]
# ## Step 3: merges by rank, and step 4: ids
#
# `explain` records every merge applied, in order, with its rank (its line in `merges.txt`).

# %%
print(tok.explain(" hello world"))

# %% [markdown]
# ## `" hello"` is not `"hello"`
#
# Because the space belongs to the word after it, the same word has different tokens at the
# start of a text and after a space, and capitalisation matters too.

# %%
for word in ["hello", " hello", "Hello", " Hello", " HELLO"]:
    ids = tok.encode(word)
    print(f"{word!r:10} -> {ids} {tok.decode_tokens(ids)}")

# %% [markdown]
# ## Numbers and other scripts
#
# Digit runs are merged by frequency, not by value: some numbers are one token, others are cut in
# arbitrary places, which is one reason GPT-2 is bad at arithmetic. Text in scripts that were
# rare in GPT-2's (mostly English) training data falls back to byte-level pieces: one Chinese
# character is often two or three tokens, and a single token may hold only part of a character.

# %%
for s in [" 1", " 42", " 1000", " 2024", " 12345", " 3.14159"]:
    print(f"{s!r:12} -> {tok.decode_tokens(tok.encode(s))}")

# %%
for s in ["你好，世界", "Привет, мир", "مرحبا بالعالم", "👍🏽"]:
    ids = tok.encode(s)
    print(f"{s}: {len(s)} characters, {len(s.encode())} bytes -> {len(ids)} tokens {ids}")
    print("   token texts:", tok.decode_tokens(ids), "(U+FFFD marks part of a character)")

# %% [markdown]
# ## Decoding, and streaming
#
# `decode` joins the tokens' bytes and decodes UTF-8. When a generated token ends in the middle
# of a character, printing it alone would show a replacement character; a **stream decoder**
# holds the bytes back until the character is complete.

# %%
ids = tok.encode("Fish 🐟 and chips")
dec = tok.stream_decoder()
pieces = [dec.feed(i) for i in ids] + [dec.flush()]
print(pieces)
print("round trip:", "".join(pieces) == tok.decode(ids) == "Fish 🐟 and chips")

# %% [markdown]
# ## The special token
#
# `<|endoftext|>` separates documents. Text that merely *contains* that string is refused by
# default, so that pasted text cannot inject a document boundary; you choose.

# %%
try:
    tok.encode("the end<|endoftext|>")
except ValueError as e:
    print("error:", e)
print(tok.encode("the end<|endoftext|>", allowed_special={"<|endoftext|>"}))
print(tok.encode_ordinary("the end<|endoftext|>"))

# %% [markdown]
# ## Exercise
#
# 1. Find a common English word that is one token with a leading space but several without.
# 2. How many tokens does your name take? Try it in lower case and upper case.
# 3. Using `tok.explain`, find the merge with the highest rank used to build `" tokenization"`.
#    What does a high rank say about how frequent that pair was?

"""Fast versions of the reference steps, behind the same interfaces.

``npgpt/fast/model.py`` computes ``npgpt/model.py``'s forward pass with in-place arithmetic,
blocked causal attention and less work when only the last position's logits are wanted. Each fast
module may import its reference (to reuse it, and to be tested against it); a reference module
never imports a fast one. ``npgpt/forward.py`` chooses between them, once.
``npgpt/fast/tokenizer.py`` (``FastTokenizer``): the tokenizer's; ``engine_class`` chooses.
"""

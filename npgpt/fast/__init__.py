"""Fast versions of the reference steps, behind the same interfaces.

``npgpt/fast/model.py`` computes ``npgpt/model.py``'s forward pass with in-place arithmetic,
blocked causal attention and less work when only the last position's logits are wanted, and a
long prompt on threads of npgpt's own (``npgpt/fast/threads.py`` holds their machinery);
``npgpt/fast/tokenizer.py`` (``FastTokenizer``) gives ``npgpt/tokenizer.py``'s ids through a
vectorised merge, a hash table of merge ranks and a packed word cache. Each fast module may import
its reference (to reuse it, and to be tested against it); a reference module never imports a fast
one. ``npgpt/engine.py`` chooses between them, once.
"""

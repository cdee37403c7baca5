"""npgpt's pictures: matplotlib plots and self-contained HTML views.

Everything here reads the activation cache (``model.run_with_cache``) and generation traces that
``npgpt`` produces; it never reaches into the model.
"""

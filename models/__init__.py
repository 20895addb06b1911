"""The study's approaches, each buildable from the pipeline's feature shape and class count.

``models.registry`` is the entry point (``APPROACHES``, ``get_approach``, ``check_compatible``,
``build_model``, ``compile_model``, ``pool_features``), where each approach declares its steps
and their hyperparameters; one module per approach family.
"""

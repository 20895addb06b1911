"""The study's approaches, each buildable from the pipeline's feature shape and class count."""

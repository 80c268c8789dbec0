"""LexIntel's arq worker: WorkerSettings and one module per pipeline stage."""

"""LexIntel's framework-free bottom layer: settings, database, models, job and progress
contracts, errors and blob storage."""

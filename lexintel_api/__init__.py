"""LexIntel's Starlette + Strawberry GraphQL API and the `lexintel` command line."""

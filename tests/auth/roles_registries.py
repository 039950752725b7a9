"""Minimum roles, refusable request bodies and path values of these routes (placeholder)."""

MINIMUM_ROLE: dict[tuple[str, str], str] = {}

REQUESTS: dict[tuple[str, str], dict] = {}

# Values for path parameters these routes add (merged into test_roles' `targets`).
PATH_VALUES: dict[str, str] = {}

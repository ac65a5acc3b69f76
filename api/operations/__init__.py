"""The operation tables, one module per area; `routes` joins them in this order, which is the
order Starlette matches paths in (a literal path before the template beside it)."""

"""CLI verbs, one module per area; each exposes `register(app)` and only wires library calls."""

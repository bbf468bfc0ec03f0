"""One small module per service of the dev stack, shaped like testcontainers community modules."""

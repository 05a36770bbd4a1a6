"""Backend connectors: one module per backend family, behind the `Connector` protocol."""

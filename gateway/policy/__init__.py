"""The routing policy: pydantic models, the YAML loader with file:line errors, hot reload."""

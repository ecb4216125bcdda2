"""The HTTP API: thin FastAPI routes that validate, authenticate and call `shared`."""

"""HTTP: the Agent Server API on FastAPI/Starlette."""

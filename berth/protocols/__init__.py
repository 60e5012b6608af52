"""Protocol endpoints served next to the Agent Server API: MCP, A2A."""

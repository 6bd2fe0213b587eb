"""REST and websocket routes."""

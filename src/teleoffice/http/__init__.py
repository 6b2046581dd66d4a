"""The HTTP side: health, metrics, and (later) the portal's REST API and WebSocket."""

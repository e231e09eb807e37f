"""The WebSocket gateway: one socket's life (session.py), the table from frame to use case
(dispatch.py), and the rate limits it applies (ratelimit.py)."""

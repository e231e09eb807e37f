"""The WebSocket gateway: the /ws endpoint and what its sockets share (endpoint.py), one
socket's life (session.py), the table from frame to use case (dispatch.py), and the rate
limits it applies (ratelimit.py)."""

"""The WebSocket gateway: the /ws endpoint (endpoint.py) and what its sockets share
(shared.py), one socket's life (session.py), the first frame (hello.py), the table from
frame to use case (dispatch.py), rate limits, tokens (auth.py, jwks.py, tokens.py), and the
uvicorn protocol classes it runs on (wsproto.py, httpproto.py)."""

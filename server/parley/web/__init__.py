"""Thin HTTP adapters: health and the internal API with its OpenAPI document, the chat page
and /parley.js, and demo mode."""

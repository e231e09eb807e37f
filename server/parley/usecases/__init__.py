"""Use cases: each checks, commits through the store, then hands its events to fanout.events.
They know no transport: the gateway and the internal API both call them."""

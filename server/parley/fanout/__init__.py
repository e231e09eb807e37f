"""Getting events to devices: events (the only publisher), the hub (this process's sockets
by user) and the brokers between processes (memory://, redis://)."""

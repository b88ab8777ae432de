"""The sender: claim queued messages with a lease, render them, send them over one connection, record outcomes."""

"""Pure tests of the sans-IO core: no sockets, no event loop."""

"""A small chat service with the ID bug threadwire's migration tooling exists to fix."""

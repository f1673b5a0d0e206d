"""forgeml test suite (a package so that spawned worker processes can import test helpers)."""

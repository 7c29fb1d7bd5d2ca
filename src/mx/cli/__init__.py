"""The `mx` command line: thin click commands over the library."""

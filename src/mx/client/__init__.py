"""The consumer side: resolve, fetch, verify and cache models from a static index."""

"""`mx index build`: registry.yaml and the model repos it names -> a static index."""

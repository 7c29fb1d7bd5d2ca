"""Model sources the pipeline tests convert: each module is an entry point `build`."""

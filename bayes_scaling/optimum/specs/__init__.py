"""One module per optimum model kind; each registers its spec (``optimum.spec.register``)."""

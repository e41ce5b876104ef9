"""The extraction stage: corpus manifests in, HDF5 feature stores out (see ``sercore.store``)."""

"""``predict``: a trained model (a bundle, :mod:`predict.bundle`) applied to new audio (:mod:`predict.cli`)."""

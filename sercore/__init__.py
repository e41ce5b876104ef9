"""What the extraction stage and the trainer share: labels, manifests, splits and the store format.

Kept free of audio and model dependencies so that the trainer stays lightweight: it needs
numpy and h5py from here, never librosa or the pretrained models.
"""

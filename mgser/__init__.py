"""The ``mgser`` command: one group over the toolkit's commands (``mgser extract``, ``mgser train``, ...), and a
Python API for notebooks (:mod:`mgser.api`)::

    import mgser
    model = mgser.load_model("runs/de_random")
    model.predict("clip.wav").label

The API's names are imported on first use, so ``mgser --help`` does not load torch.
"""

__all__ = ["load_model", "Model", "EmotionPrediction"]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

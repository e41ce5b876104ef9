"""Feature extractors, one module each; each module registers its features (:mod:`.registry`).

Importing this package imports every module in it, so a new extractor is one file: the module declares its
configuration dataclass and registers its extractor class with :func:`.registry.register`. Those modules import
only light libraries at the top; the model libraries (fairseq, allosaurus, opensmile, transformers, torch) are
imported when an extractor loads, so asking for ``mfcc`` imports none of them.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import ExtractorSettings, FeatureExtractor, MissingWeightsError
from .registry import Registration, families, registration, registrations


def _import_extractor_modules() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_import_extractor_modules()


def names() -> tuple[str, ...]:
    """Every registered feature, in listing order."""
    return tuple(r.name for r in registrations())


def default_names() -> tuple[str, ...]:
    """What ``extract`` computes when ``--features`` is not given (each one whose weights are available): the
    paper's features. openSMILE sets and the Hugging Face encoders are extracted when named."""
    return tuple(r.name for r in registrations() if r.default)


def needs() -> dict[str, str]:
    """What each registered feature needs beyond the core install (``extract --help`` lists it)."""
    return {r.name: r.needs for r in registrations()}


def feature_table() -> str:
    """The registered features as a markdown table (feature, what it needs, whether extracted by default): the
    list of docs/features.md, filled in when the site is built (``docs/hooks.py``)."""
    rows = [f"| `{r.name}` | {r.needs} | {'by default' if r.default else 'when named'} |" for r in registrations()]
    rows += [f"| NAME | {f.needs} | when named |" for f in families()]
    return "\n".join(["| Feature | What it needs | Extracted |", "|---|---|---|", *rows])


#: The registry as it stands once every module of the package has registered: name -> :class:`Registration`.
REGISTRY: dict[str, Registration] = {r.name: r for r in registrations()}
NAMES: tuple[str, ...] = names()
#: What each registered feature needs (``extract --help`` lists it).
NEEDS: dict[str, str] = needs()
DEFAULT_NAMES: tuple[str, ...] = default_names()


def extractor_class(name: str, settings: ExtractorSettings | None = None) -> type[FeatureExtractor]:
    """The extractor of feature ``name``: a registered one, or one of a family's user-named extractors (a Hugging
    Face encoder named in ``settings.ssl``, or one of the suggested encoder names, whose ``check_available`` then says
    how to configure it)."""
    found = registration(name)
    if found is not None:
        return found.extractor
    for family in families():
        if (settings is not None and name in getattr(settings, family.key)) or name in family.suggested:
            return family.extractor_of(name)
    configured = [(f, sorted(getattr(settings, f.key))) for f in families()] if settings is not None else []
    raise ValueError(f"unknown feature {name!r}; known: {', '.join(names())}"
                     + "".join(f", and the encoders configured under {f.key}: {', '.join(c)}" for f, c in configured if c)
                     + "".join(f" ({f.hint.format(name=name)})" for f in families()))


__all__ = ["ExtractorSettings", "FeatureExtractor", "MissingWeightsError", "REGISTRY", "NAMES", "NEEDS", "DEFAULT_NAMES",
           "Registration", "default_names", "extractor_class", "feature_table", "names", "needs"]

"""The extractor registry: every extractor module registers its own features when it is imported.

A registration (:func:`register`, a class decorator) names the feature, says what it needs beyond the core
install (``extract --help`` and docs/features.md list it), whether ``extract`` computes it by default, and the
extractor's configuration: a frozen dataclass of the module's own whose fields are its parameters. A field the
user sets is declared with :func:`setting` (its key in ``ExtractorSettings`` and the weights file, its
environment variable and its ``extract`` option, generated from here) or :func:`extra` (a key of
``ExtractorSettings.extra``); every other field is a constant with its default. :func:`register_family` registers
extractors whose feature names the user chooses (the Hugging Face encoders: ``--ssl NAME=CHECKPOINT``).

The package (``extract/extractors/__init__.py``) imports every module of the package, so a new extractor is one
file: its module must only import light libraries at the top (numpy, the standard library) and import its model's
library inside ``check_available``/``load``/``extract``.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Callable

#: Kinds of :func:`setting` values: a file or folder path (relative paths in a weights file are taken relative to
#: the file's folder) or a non-negative integer.
SETTING_KINDS = ("path", "index")


@dataclass(frozen=True)
class Setting:
    """How the user sets one configuration field: its key, environment variable and ``extract`` option."""

    key: str  # ExtractorSettings keyword / attribute and weights-file key, e.g. "byol_checkpoint"
    option: str  # the extract (and predict) option, e.g. "--byol-checkpoint"
    help: str  # the option's help, without a final full stop or the environment variable (the CLI adds them)
    env: str = ""  # the environment variable that fills it when unset, e.g. "MGSER_BYOL_CHECKPOINT"
    kind: str = "path"  # one of SETTING_KINDS


def setting(key: str, *, option: str, help: str, env: str = "", kind: str = "path") -> Any:
    """A configuration field the user sets (default unset, None); see :class:`Setting`."""
    if kind not in SETTING_KINDS:
        raise ValueError(f"setting {key!r}: kind must be one of {SETTING_KINDS}, got {kind!r}")
    return field(default=None, metadata={"setting": Setting(key, option, help, env, kind)})


def extra(key: str, default: Any = None) -> Any:
    """A configuration field read from ``ExtractorSettings.extra[key]`` (the weights file's ``[extra]`` table)."""
    return field(default=default, metadata={"extra": key})


def config_settings(config: type) -> dict[str, Setting]:
    """The user-set fields of a configuration dataclass: field name -> :class:`Setting`."""
    return {f.name: f.metadata["setting"] for f in fields(config) if "setting" in f.metadata}


def config_of(config: type, settings):
    """An instance of the configuration dataclass ``config`` filled from ``settings`` (an
    :class:`~.base.ExtractorSettings`; this module imports nothing of the package): each :func:`setting` field from
    its key (when set), each :func:`extra` field from ``settings.extra`` (when present), the rest at their defaults."""
    values = {}
    for f in fields(config):
        if "setting" in f.metadata:
            value = settings.get(f.metadata["setting"].key)
            if value is not None:
                values[f.name] = value
        elif "extra" in f.metadata and f.metadata["extra"] in settings.extra:
            values[f.name] = settings.extra[f.metadata["extra"]]
    return config(**values)


def config_defaults(config: type) -> dict[str, Any]:
    """The configuration's fields and their defaults (what ``extract`` uses when nothing is set)."""
    return {f.name: _default(f) for f in fields(config)}


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


@dataclass(frozen=True)
class Registration:
    """One registered feature."""

    name: str
    extractor: type  # the FeatureExtractor subclass
    needs: str  # what it needs beyond the core install, for extract --help and docs/features.md
    default: bool  # computed by extract when --features is not given (when available)
    config: type  # the frozen configuration dataclass
    rank: int  # position in listings (extract --help, the default set); ties keep the order of registration


@dataclass(frozen=True)
class Family:
    """Extractors whose feature names the user chooses, each configured under ``settings.<key>[name]``."""

    key: str  # the ExtractorSettings attribute holding name -> options, e.g. "ssl"
    extractor_of: Callable[[str], type]  # feature name -> its FeatureExtractor subclass
    suggested: tuple[str, ...]  # names accepted without configuration (check_available then says how to set them)
    needs: str  # extract --help's line for NAME
    config: type  # the frozen configuration dataclass of one name
    hint: str  # how to configure a name, for the unknown-feature message ("{name}" is replaced)


_REGISTRY: dict[str, Registration] = {}
_FAMILIES: dict[str, Family] = {}


def register(name: str, *, needs: str, config: type, default: bool = False, rank: int = 100):
    """Class decorator: register a :class:`~.base.FeatureExtractor` subclass as feature ``name``.

    Sets the class's ``name`` and ``config_class``. ``rank`` orders the listings (the paper's features come first).
    """
    if not getattr(config, "__dataclass_params__", None) or not config.__dataclass_params__.frozen:
        raise TypeError(f"feature {name!r}: its configuration {config.__name__} must be a frozen dataclass")

    def decorate(cls: type) -> type:
        known = _REGISTRY.get(name)
        if known is not None and known.extractor.__qualname__ != cls.__qualname__:
            raise ValueError(f"feature {name!r} is registered twice: {known.extractor.__module__}.{known.extractor.__qualname__} "
                             f"and {cls.__module__}.{cls.__qualname__}")
        cls.name = name
        cls.config_class = config
        _REGISTRY[name] = Registration(name, cls, needs, default, config, rank)
        return cls

    return decorate


def register_family(key: str, *, extractor_of: Callable[[str], type], suggested: tuple[str, ...], needs: str,
                    config: type, hint: str) -> None:
    """Register a family of user-named extractors (see :class:`Family`)."""
    _FAMILIES[key] = Family(key, extractor_of, tuple(suggested), needs, config, hint)


def registration(name: str) -> Registration | None:
    """The registration of feature ``name`` (None: no extractor registered it)."""
    return _REGISTRY.get(name)


def registrations() -> list[Registration]:
    """Every registered feature, in listing order (rank, then order of registration)."""
    order = {name: i for i, name in enumerate(_REGISTRY)}
    return sorted(_REGISTRY.values(), key=lambda r: (r.rank, order[r.name]))


def families() -> list[Family]:
    return list(_FAMILIES.values())


def settings_fields() -> dict[str, Setting]:
    """Every user-set field of every registered configuration: key -> :class:`Setting`, in listing order."""
    out: dict[str, Setting] = {}
    for r in registrations():
        for s in config_settings(r.config).values():
            out.setdefault(s.key, s)
    return out


def setting_owners(key: str) -> list[tuple[str, str]]:
    """Where the setting ``key`` is declared: (feature name, configuration field name) of each registered feature
    whose configuration declares it, in listing order (a feature's provenance records the field under its name)."""
    return [(r.name, name) for r in registrations() for name, s in config_settings(r.config).items() if s.key == key]

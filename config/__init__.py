"""Typed, validated per-environment configuration, read once by the app entry."""
from config.loader import DEFAULT_ENVIRONMENT, known_environments, load_config, load_config_from_context
from config.schema import PlatformConfig
from config.typed import ConfigError

__all__ = [
    "DEFAULT_ENVIRONMENT",
    "ConfigError",
    "PlatformConfig",
    "known_environments",
    "load_config",
    "load_config_from_context",
]

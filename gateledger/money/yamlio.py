"""YAML in and out for money files: decimals stay exact (a YAML float becomes a Decimal of the text as written)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml


class _ExactLoader(yaml.SafeLoader):
    """SafeLoader that reads YAML floats as Decimals of their literal text, never via binary floats."""


def _decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    return Decimal(text)


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _decimal)


class YamlFileError(ValueError):
    """A YAML file that cannot be read or parsed."""


def load_yaml_text(text: str, where: str) -> Any:
    """Parse YAML text with exact decimals."""
    try:
        return yaml.load(text, Loader=_ExactLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise YamlFileError(f"{where}: invalid YAML: {exc}") from None


def load_yaml_file(path: Path) -> Any:
    """Parse a YAML file with exact decimals."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlFileError(f"{path}: cannot read: {exc}") from None
    return load_yaml_text(text, str(path))


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes Decimals as quoted strings (exact, and never re-read as floats)."""


def _represent_decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", format(value, "f"), style='"')


_Dumper.add_representer(Decimal, _represent_decimal)


def dump_yaml(data: Any) -> str:
    """YAML text for data; Decimals as quoted exact strings, keys in the given order."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=110)


def write_atomically(path: Path, text: str) -> None:
    """Replace a file's content in one step, so a crash leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)

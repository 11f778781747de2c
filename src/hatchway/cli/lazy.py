"""Commands registered by name and imported only when run, so that ``hatchway login`` never
pays for the server (aiohttp, SQLAlchemy, pydantic) and ``hatchway --help`` imports none
of them: the help line of each command is given where it is registered.

A :class:`LazyCommand` stands in the group for the real command. The group's help lists it
from its name and help line; when it is run (or asked for its own ``--help``) it imports
``module:attribute`` — a typer command function or a ``typer.Typer`` of subcommands — and
hands the context over to the real command.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

__all__ = ["COMMANDS_PACKAGE", "LazyCommand", "command", "lazy_group"]

COMMANDS_PACKAGE = "hatchway.cli.commands"


class LazyCommand(TyperCommand):
    """``name`` in the group's listing; ``target`` (``package.module:attribute``) when run."""

    def __init__(self, name: str, target: str, help: str) -> None:
        super().__init__(name=name, help=help, short_help=help, add_help_option=False)
        self.target = target
        self._loaded: Any = None

    def load(self) -> Any:
        """The real click command (a group for a ``typer.Typer``), imported on first use."""
        if self._loaded is None:
            module_name, _, attribute = self.target.partition(":")
            obj = getattr(importlib.import_module(module_name), attribute)
            if isinstance(obj, typer.Typer):
                command: Any = typer.main.get_group(obj)
                command.help = self.help  # as add_typer(help=...) would
            else:
                single = typer.Typer(add_completion=False)
                single.command(name=self.name)(obj)
                command = typer.main.get_command(single)
            command.name = self.name
            self._loaded = command
        return self._loaded

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        return self.load().make_context(info_name, args, parent=parent, **extra)


def command(name: str, help: str, at: str | None = None) -> LazyCommand:
    """``name``, run by ``hatchway.cli.commands.<at>`` (``module:attribute``; by default
    the function ``name`` in the module ``name``), listed with ``help``."""
    return LazyCommand(name, f"{COMMANDS_PACKAGE}.{at or f'{name}:{name}'}", help)


def lazy_group(commands: list[LazyCommand]) -> type[TyperGroup]:
    """A group class for ``typer.Typer(cls=...)`` that lists ``commands`` after the app's own."""

    class Group(TyperGroup):
        def __init__(self, **attrs: Any) -> None:
            super().__init__(**attrs)
            for command in commands:
                self.add_command(command)

    return Group

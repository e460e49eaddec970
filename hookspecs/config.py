"""Configuration hooks: plugins declare their options and read them back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .markers import hookspec

if TYPE_CHECKING:
    from trainhooks.options import OptionGroup
    from trainhooks.trainer import Trainer


@hookspec
def add_options(parser: OptionGroup) -> None:
    """Declare this plugin's command-line and API options.

    Fires once per plugin, when the plugin manager builds the option table: before ``trainhooks fit``
    parses its arguments (so ``--help`` lists every installed plugin's options) and when a
    :class:`~trainhooks.Trainer` resolves ``options=``. It is the one hook that receives no
    ``trainer``: none exists yet.

    :param parser: an option group titled with this plugin's name. Call
        ``parser.add_option("--patience", type=int, default=5, help="...")`` as with argparse.
        The value is read back as ``trainer.options["patience"]`` (dashes become underscores).
        Two plugins declaring the same option is an error naming both.

    Return value: ignored.
    """


@hookspec(historic=True)
def configure(trainer: Trainer) -> None:
    """Read options and prepare, once the trainer and its options exist.

    Fires once, at the end of ``Trainer.__init__``; it is *historic*: a plugin registered later
    (``trainer.add_callback``, ``trainer.plugin_manager.register``) gets the call replayed on
    registration, so every plugin is configured exactly once.

    :param trainer: the trainer; ``trainer.options`` holds every declared option's value.

    Return value: ignored.
    """

"""CLI subcommands. Each module here defines ``register(subparsers)``, which
adds its subparser and sets ``func`` (returning the exit code); the CLI finds
them by walking this package, so a new command needs no edit elsewhere.
``_common`` (skipped by that walk) holds what several commands share; a
command never imports another command."""

"""`python -m logsense`, the same as the `logsense` command."""

from logsense.cli import main

main()

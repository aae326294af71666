"""Operator CLI, `acme-renewer`: edit the certificates table, renew now, and check DNS before ordering.

One module per command (add, listing, show, status, renew, check, remove, install); entry.py parses the command line and
hands the arguments to the command, which uses common.py (settings, errors), table.py (the table as operators edit
it) and output.py (tables that fit the terminal, JSON).
"""

from acme_renewer.cli.entry import main

__all__ = ["main"]

"""python -m mgctl.extcap: what the installed mgcap-extcap wrapper runs."""

from mgctl.extcap.cli import main

main()

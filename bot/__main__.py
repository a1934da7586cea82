"""`python -m bot` is `coupdepouce`."""

from bot.cli import main

main()

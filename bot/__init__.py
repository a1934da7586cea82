"""Channels and processes: Telegram, web server, scheduler, dispatcher, command line."""

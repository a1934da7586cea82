"""The periodic digest: what happened in the council, posted to its group."""

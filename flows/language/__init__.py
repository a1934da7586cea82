"""Language: the person chooses how the bot writes to them."""

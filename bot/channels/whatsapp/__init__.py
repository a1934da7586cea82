"""The WhatsApp channel, through Meta's Cloud API."""

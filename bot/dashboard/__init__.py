"""The coordinators' dashboard in a browser: server-rendered pages per council."""

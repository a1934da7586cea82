"""Channel adapters: each turns its updates into Inbound events and renders Outcomes."""

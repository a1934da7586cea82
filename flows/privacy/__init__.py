"""Privacy: what we keep (/mydata) and erasure (/forget)."""

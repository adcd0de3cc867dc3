"""Real-time offers on the transaction stream, measured against a hash-assigned control group."""

"""Sans-IO SIP protocol core: parse, transactions, dialogs, digest auth. No clock, no sockets."""

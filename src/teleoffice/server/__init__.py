"""The running server: the SIP service (sans-IO) and its asyncio runner."""

"""The user ABI: errno values, constants and struct layouts, with Linux's spelling."""

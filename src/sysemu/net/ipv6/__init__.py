"""IPv6 helpers TCP needs (address classes); IPv6 sockets live in ipv4/ with IPv4."""

"""IPv4/IPv6 TCP: af_inet, inet_hashtables, inet_connection_sock, request_sock, tcp."""

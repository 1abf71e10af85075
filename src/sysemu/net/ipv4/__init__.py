"""IPv4/IPv6 TCP: af_inet, inet_hashtables, request_sock, inet_connection_sock, route, and
tcp split as Linux splits it (tcp, tcp_output, tcp_timer, tcp_minisocks, tcp_input,
tcp_ipv4)."""

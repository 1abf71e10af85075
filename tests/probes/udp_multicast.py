"""Multicast on the loopback, as a network namespace whose only device is lo shows it:
joining needs lo's address (0.0.0.0: ENODEV), sending needs IP_MULTICAST_IF (no route:
ENETUNREACH), lo loops every datagram back whatever IP_MULTICAST_LOOP says, a socket
that did not join does not get it, IP_DROP_MEMBERSHIP stops it. Prints one JSON object."""
import errno
import json
import socket
import time

GROUP = "239.1.2.3"


def outcome(fn):
    try:
        value = fn()
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return value.decode() if isinstance(value, bytes) else value


def drain(s):
    time.sleep(0.1)
    out = []
    while True:
        try:
            out.append(s.recv(100, socket.MSG_DONTWAIT).decode())
        except BlockingIOError:
            return out


r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
r.bind(("0.0.0.0", 0))
port = r.getsockname()[1]
other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
other.bind(("0.0.0.0", port))
mreq_any = socket.inet_aton(GROUP) + socket.inet_aton("0.0.0.0")
mreq_lo = socket.inet_aton(GROUP) + socket.inet_aton("127.0.0.1")
res = {"join_any": outcome(lambda: r.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                                                 mreq_any)),
       "join_lo": outcome(lambda: r.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                                                mreq_lo)),
       "join_twice": outcome(lambda: r.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                                                   mreq_lo)),
       "join_unicast": outcome(lambda: r.setsockopt(
           socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
           socket.inet_aton("10.1.2.3") + socket.inet_aton("127.0.0.1")))}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
res["send_no_if"] = outcome(lambda: s.sendto(b"x", (GROUP, port)))
res["set_if"] = outcome(lambda: s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                              socket.inet_aton("127.0.0.1")))
res["send"] = outcome(lambda: s.sendto(b"one", (GROUP, port)))
res["member_got"], res["other_got"] = drain(r), drain(other)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
res["loop_off_send"] = outcome(lambda: s.sendto(b"two", (GROUP, port)))
res["loop_off_got"] = drain(r)
res["loop_opt"] = s.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP)
res["ttl_opt"] = s.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL)
res["drop"] = outcome(lambda: r.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP,
                                            mreq_lo))
res["drop_again"] = outcome(lambda: r.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP,
                                                  mreq_lo))
s.sendto(b"three", (GROUP, port))
res["after_drop"] = drain(r)
print(json.dumps(res, sort_keys=True))

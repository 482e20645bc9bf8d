/* This host's listening TCP sockets: who listens on which address and port,
 * with which accept queue, owned by which process. Read through
 * NETLINK_SOCK_DIAG, or from /proc/net/tcp{,6} when netlink is refused.
 * The parsers, the scope of a port and the refusal verdict are pure, so
 * every case is a row of tests/test_listeners.c (issue 3). */
#ifndef VP_LISTENERS_H
#define VP_LISTENERS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "agent/limits.h"
#include "probes/classify.h"

struct ifaddrs;

enum vp_listen_source {
	VP_LISTEN_SOURCE_AUTO,     /* netlink, else /proc */
	VP_LISTEN_SOURCE_NETLINK,
	VP_LISTEN_SOURCE_PROC,
	VP_LISTEN_SOURCE_MAX,
	VP_LISTEN_SOURCE_INVALID = -EINVAL,
};

/* IPV6_V6ONLY of an IPv6 socket. /proc does not show it: UNKNOWN there. */
enum vp_v6only {
	VP_V6ONLY_UNKNOWN,
	VP_V6ONLY_OFF,
	VP_V6ONLY_ON,
};

enum vp_listen_scope {
	VP_SCOPE_NOT_LISTENING,
	VP_SCOPE_LOOPBACK_ONLY,    /* only 127.0.0.0/8 and ::1 */
	VP_SCOPE_SPECIFIC_ADDRESS, /* named addresses, not every one */
	VP_SCOPE_ALL_INTERFACES,   /* 0.0.0.0, or :: that also takes IPv4 */
	VP_SCOPE_MAX,
	VP_SCOPE_INVALID = -EINVAL,
};

struct vp_listen_sock {
	int family;                /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	uint16_t port;
	enum vp_v6only v6only;     /* UNKNOWN for AF_INET */
	uint64_t inode;            /* 0 when the kernel did not say */
	uint32_t queue_cur;        /* connections waiting for accept() */
	uint32_t queue_max;        /* the backlog listen() got (capped by somaxconn) */
	bool queue_max_known;      /* netlink only: /proc does not show the maximum */
	int pid;                   /* owning process, 0 when unknown */
	char comm[VP_LISTEN_COMM_MAX]; /* its name from /proc/PID/comm, cleaned
	                                  by vp_listen_comm_clean() */
};

struct vp_listen_table {
	enum vp_listen_source source; /* NETLINK or PROC once read */
	int netlink_err;           /* -errno of netlink when AUTO fell back to /proc, else 0 */
	struct vp_listen_sock *socks; /* owned, sorted by port once read */
	size_t n;
	size_t cap;
	bool truncated;            /* more than VP_LISTEN_SOCKETS_MAX: the rest were dropped */
	bool owners_partial;       /* the owner scan hit VP_LISTEN_SCAN_LINKS_MAX */
};

/* The sockets of one port: a view into a table. */
struct vp_listen_port {
	uint16_t port;
	enum vp_listen_scope scope;
	const struct vp_listen_sock *socks; /* borrowed from the table, NULL when n == 0 */
	size_t n;
	bool overflowing;          /* some socket's accept queue is full */
};

void vp_listen_table_init(struct vp_listen_table *t);
void vp_listen_table_done(struct vp_listen_table *t);

/* Reads the table (replacing what it held), sorts it by port and finds the
 * owners. AUTO tries netlink and falls back to /proc on any error but ENOMEM,
 * keeping netlink's error in t->netlink_err. 0 or -errno. */
int vp_listen_read(struct vp_listen_table *t, enum vp_listen_source src);

/* Appends the LISTEN sockets of /proc/net/tcp (AF_INET) or tcp6 (AF_INET6)
 * text. Lines that do not parse, lines longer than VP_LISTEN_PROC_LINE_MAX
 * and other states are skipped. Addresses are read in this host's byte order,
 * as the kernel prints them. Returns the number added, or -ENOMEM. */
int vp_listen_parse_proc(struct vp_listen_table *t, int family, const char *buf, size_t len);

/* Appends the LISTEN sockets of one netlink receive buffer of inet_diag_msg
 * replies. Returns 0 when more is to come, 1 on NLMSG_DONE, the error of an
 * NLMSG_ERROR, -EBADMSG when a header overruns the buffer, -ENOMEM. Messages
 * too short for an inet_diag_msg are skipped. */
int vp_listen_parse_diag(struct vp_listen_table *t, const void *buf, size_t len);

/* Sorts by port, family, address: a port's sockets become adjacent. */
void vp_listen_table_sort(struct vp_listen_table *t);

/* Fills pid and comm by scanning /proc/[pid]/fd for socket:[inode], at most
 * VP_LISTEN_SCAN_LINKS_MAX links (then sets owners_partial). Unreadable
 * processes are skipped: missing permission is not an error. 0 or -ENOMEM. */
int vp_listen_find_owners(struct vp_listen_table *t);

/* A process name as every consumer gets it (JSON, the page, records,
 * terminals), in place: valid UTF-8 is kept; every byte that is not part of
 * a valid character (0xff, a character the kernel cut at 15 bytes, an
 * overlong form, a surrogate) becomes '?', one a byte, and every control
 * character one '?' (vp_utf8_clean()). Never longer than it was, so it stays
 * within its VP_LISTEN_COMM_MAX. */
void vp_listen_comm_clean(char *comm);

/* The scope of a set of sockets of one port. [::] with IPV6_V6ONLY on takes
 * no IPv4 connection, and a VM's internal address is IPv4, so alone it is
 * SPECIFIC_ADDRESS ("::"). [::] with IPV6_V6ONLY unknown (/proc) is taken as
 * off, the Linux default (net.ipv6.bindv6only=0). */
enum vp_listen_scope vp_listen_scope_of(const struct vp_listen_sock *socks, size_t n);

/* The port's view of a table sorted by vp_listen_table_sort() (as
 * vp_listen_read() leaves it); the same holds for vp_listen_refine_refused(). */
void vp_listen_port_get(const struct vp_listen_table *t, uint16_t port, struct vp_listen_port *ret);

/* Whether a socket accepts connections to 'sa' (its port is not compared). */
bool vp_listen_sock_covers(const struct vp_listen_sock *s, const struct sockaddr *sa);
bool vp_listen_sock_overflowing(const struct vp_listen_sock *s);

/* The address as text ("127.0.0.1", "::1"), into buf of INET6_ADDRSTRLEN. */
void vp_listen_addr_text(const struct vp_listen_sock *s, char *buf, size_t len);

const char *vp_listen_scope_name(enum vp_listen_scope s);
const char *vp_listen_source_name(enum vp_listen_source s);

/* Whether 'sa' is an address of this host: 127.0.0.0/8, ::1 or one of the
 * interface addresses. The _in variant takes the list (pure). */
bool vp_addr_is_local(const struct sockaddr *sa);
bool vp_addr_is_local_in(const struct sockaddr *sa, const struct ifaddrs *list);

/* This host's interface addresses, read by getifaddrs() (a netlink dump of
 * every link and address) at most once per VP_LOCAL_ADDRS_TTL_MS, so that a
 * round of thousands of refusals costs one dump, not one each. */
#define VP_LOCAL_ADDRS_TTL_MS 1000

struct vp_local_addrs {
	struct ifaddrs *list;      /* owned; NULL when not read or getifaddrs failed */
	uint64_t read_ms;          /* the caller's clock at that reading */
	bool read;
	unsigned long reads;       /* getifaddrs() calls so far, for the tests */
};

void vp_local_addrs_init(struct vp_local_addrs *c);
void vp_local_addrs_done(struct vp_local_addrs *c);

/* vp_addr_is_local() through the cache: 127.0.0.0/8 and ::1 without a
 * reading; otherwise the list, read again when it is older than
 * VP_LOCAL_ADDRS_TTL_MS at 'now_ms' (a monotonic millisecond clock, such as
 * uv_now()). When getifaddrs() fails, only loopback counts as local until
 * the next reading. */
bool vp_local_addrs_has(struct vp_local_addrs *c, const struct sockaddr *sa, uint64_t now_ms);

/* A connect to 'addr' (an address of this host, see vp_addr_is_local) port
 * 'port' was refused. When the table shows the port bound to loopback only,
 * 'out' becomes localhost_only / loopback_bind; bound to other addresses
 * only, refused / bound_other_address; with detail and hint rewritten.
 * Returns 1 when it rewrote 'out', 0 when the table explains nothing. */
int vp_listen_refine_refused(const struct vp_listen_table *t, const struct sockaddr *addr,
                             uint16_t port, struct vp_verdict_out *out);

#endif

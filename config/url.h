/* Addresses as users write them: target URLs (tcp://, postgres://, redis://,
 * rediss://, http://, https://), ADDR:PORT pairs and CIDR blocks.
 * Pure string work: nothing here resolves a name or opens a socket. */
#ifndef VP_URL_H
#define VP_URL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/limits.h"

enum vp_kind {
	VP_KIND_TCP,
	VP_KIND_POSTGRES,
	VP_KIND_REDIS,
	VP_KIND_REDISS,
	VP_KIND_HTTP,
	VP_KIND_HTTPS,
	VP_KIND_MAX,
	VP_KIND_INVALID = -EINVAL,
};

enum vp_host_type {
	VP_HOST_NAME,   /* needs resolution */
	VP_HOST_IPV4,
	VP_HOST_IPV6,
};

struct vp_url {
	enum vp_kind kind;
	enum vp_host_type host_type;
	char host[VP_HOST_MAX];   /* without brackets, NUL-terminated */
	uint16_t port;            /* explicit or the scheme's default */
	/* Owned, http(s) only: path and query, "/" by default, shorter than
	 * VP_PATH_MAX; NULL for the other schemes. Freed by vp_url_free(). A
	 * pointer rather than an array: a config of 100,000 targets would
	 * otherwise carry 100 MB of mostly empty paths. */
	char *path;
};

/* Parses 'text' into '*ret'; '*ret' owns its path until vp_url_free().
 * Returns 0, or -EINVAL with a sentence that says what is wrong in 'err'
 * (at most 'errlen' bytes), or -ENOMEM ("out of memory for the URL's
 * path"), leaving '*ret' untouched. */
int vp_url_parse(const char *text, struct vp_url *ret, char *err, size_t errlen);

/* Frees what vp_url_parse() allocated and sets 'path' to NULL; NULL and a
 * zeroed struct are fine. */
void vp_url_free(struct vp_url *u);

/* An IP address and a port, as in agent.status_listen ("127.0.0.1:9464",
 * "[::1]:9464"), beacons[].listen and agent.dns_servers. */
struct vp_addrport {
	int family;            /* AF_INET or AF_INET6 */
	uint8_t addr[16];      /* network byte order; IPv4 uses the first 4 bytes */
	uint16_t port;
};

/* Parses "IPv4:PORT" or "[IPv6]:PORT" into '*ret'. With 'default_port' 0 the
 * port is required; otherwise "IPv4", "[IPv6]" and a bare "IPv6" are accepted
 * too and get 'default_port'. Host names are refused: what this names is
 * bound to or sent to before any resolver can be trusted. Returns 0, or
 * -EINVAL with one sentence in 'err', leaving '*ret' untouched. */
int vp_addrport_parse(const char *text, uint16_t default_port, struct vp_addrport *ret,
                      char *err, size_t errlen);

/* A network such as "10.8.0.0/28" or "fd00:198:18::/48". */
struct vp_cidr {
	int family;            /* AF_INET or AF_INET6 */
	uint8_t addr[16];      /* network byte order, host bits zero */
	uint8_t prefix;
	char text[64];         /* as written */
};

/* Parses 'text' into '*ret'. A bare address means a single host (/32 or
 * /128). Host bits set below the prefix are an error, since "10.8.0.5/28"
 * is more likely a typo than a wish for 10.8.0.0/28. Returns 0, or -EINVAL
 * with one sentence in 'err', leaving '*ret' untouched. */
int vp_cidr_parse(const char *text, struct vp_cidr *ret, char *err, size_t errlen);

/* "tcp", "postgres", ...; "invalid" for anything else. */
const char *vp_kind_name(enum vp_kind kind);

/* The port a scheme uses when the URL names none; 0 when it must be given. */
uint16_t vp_kind_default_port(enum vp_kind kind);

#endif

/* Target URLs: tcp://, postgres://, redis://, rediss://, http://, https://. */
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
	char path[VP_PATH_MAX];   /* http(s): path and query, "/" by default; else "" */
};

/* Parses 'text' into '*ret'. Returns 0, or -EINVAL with a sentence that says
 * what is wrong in 'err' (at most 'errlen' bytes), leaving '*ret' untouched. */
int vp_url_parse(const char *text, struct vp_url *ret, char *err, size_t errlen);

/* "tcp", "postgres", ...; "invalid" for anything else. */
const char *vp_kind_name(enum vp_kind kind);

/* The port a scheme uses when the URL names none; 0 when it must be given. */
uint16_t vp_kind_default_port(enum vp_kind kind);

#endif

/* Which protocol module speaks for which kind of target. */
#include "probes/proto.h"

extern const struct vp_proto vp_proto_postgres;
extern const struct vp_proto vp_proto_redis;
extern const struct vp_proto vp_proto_http;
extern const struct vp_proto vp_proto_https;

const struct vp_proto *vp_proto_for(enum vp_kind kind)
{
	switch (kind) {
	case VP_KIND_POSTGRES:
		return &vp_proto_postgres;
	case VP_KIND_REDIS:
	case VP_KIND_REDISS: /* redis over TLS (probes/tls.c) */
		return &vp_proto_redis;
	case VP_KIND_HTTP:
		return &vp_proto_http;
	case VP_KIND_HTTPS:
		return &vp_proto_https;
	default:
		/* Probed at the TCP level; the detail says so. */
		return NULL;
	}
}

/* libcurl makes the http(s) connection on the probe's socket (probes/tcp.h). */
bool vp_proto_connects(const struct vp_proto *proto)
{
	return proto == &vp_proto_http || proto == &vp_proto_https;
}

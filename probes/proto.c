/* Which protocol module speaks for which kind of target. */
#include "probes/proto.h"

extern const struct vp_proto vp_proto_postgres;
extern const struct vp_proto vp_proto_redis;

const struct vp_proto *vp_proto_for(enum vp_kind kind)
{
	switch (kind) {
	case VP_KIND_POSTGRES:
		return &vp_proto_postgres;
	case VP_KIND_REDIS:
	case VP_KIND_REDISS: /* decides tls_not_built until the TLS module exists */
		return &vp_proto_redis;
	default:
		/* Probed at the TCP level; the detail says so. */
		return NULL;
	}
}

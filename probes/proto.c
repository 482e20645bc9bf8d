/* Which protocol module speaks for which kind of target. */
#include "probes/proto.h"

const struct vp_proto *vp_proto_for(enum vp_kind kind)
{
	switch (kind) {
	default:
		/* Probed at the TCP level; the detail says so. */
		return NULL;
	}
}

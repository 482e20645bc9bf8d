/* Temporary stub until the c-ares resolver lands: every name fails. */
#include <stdio.h>
#include <stdlib.h>

#include "probes/dns.h"

struct vp_dns {
	int unused;
};

struct vp_dns *vp_dns_new(uv_loop_t *loop, char *const *servers, size_t n_servers,
                          char *err, size_t errlen)
{
	(void)loop;
	(void)servers;
	(void)n_servers;
	snprintf(err, errlen, "this build resolves no names yet; give an IP address");
	return NULL;
}

void vp_dns_resolve(struct vp_dns *d, const char *name, uint32_t timeout_ms, vp_dns_cb cb,
                    void *arg)
{
	(void)d;
	(void)name;
	(void)timeout_ms;
	(void)cb;
	(void)arg;
}

void vp_dns_close(struct vp_dns *d, void (*closed)(void *arg), void *arg)
{
	(void)d;
	if (closed)
		closed(arg);
}

struct vp_dns *vp_dns_free(struct vp_dns *d)
{
	free(d);
	return NULL;
}

void vp_dns_hint(enum vp_reason r, const char *name, char *buf, size_t len)
{
	(void)r;
	snprintf(buf, len, "Give '%s' as an IP address, or use a build with DNS.", name);
}

/* Name resolution on the probe loop (c-ares): A and AAAA, every address. */
#ifndef VP_DNS_H
#define VP_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "agent/limits.h"
#include "probes/verdict.h"

#define VP_DNS_MAX_ADDRS 16

struct vp_dns_answer {
	int status;                 /* 0: n_addrs > 0; else -errno-like failure */
	enum vp_reason reason;      /* on failure: nxdomain, servfail, dns_timeout, no_address... */
	char detail[VP_DETAIL_MAX]; /* on failure: what the resolver said */
	struct sockaddr_storage addrs[VP_DNS_MAX_ADDRS]; /* AF_INET / AF_INET6, port 0 */
	size_t n_addrs;
	double ms;                  /* time the lookup took */
};

typedef void (*vp_dns_cb)(const struct vp_dns_answer *ans, void *arg);

/* A resolver using 'servers' ("ADDR" or "ADDR:PORT", "[v6]:PORT"), or
 * /etc/resolv.conf when n_servers is 0. NULL on failure, with 'err' set. */
struct vp_dns *vp_dns_new(uv_loop_t *loop, char *const *servers, size_t n_servers,
                          char *err, size_t errlen);

/* Looks 'name' up (A and AAAA). 'cb' runs once, from the loop, never from
 * inside this call. */
void vp_dns_resolve(struct vp_dns *d, const char *name, uint32_t timeout_ms, vp_dns_cb cb,
                    void *arg);

/* Cancels pending lookups (their callbacks run with a failure) and closes
 * the resolver's handles; 'closed' runs once they are closed. */
void vp_dns_close(struct vp_dns *d, void (*closed)(void *arg), void *arg);

/* The hint of a dns_error with reason 'r' for 'name', in Cloud Run / VPC terms. */
void vp_dns_hint(enum vp_reason r, const char *name, char *buf, size_t len);

/* A failed c-ares lookup of 'name' (ARES_ENOTFOUND...): sets 'reason' and the
 * detail sentence, returns the answer's -errno-like status. Pure. */
int vp_dns_classify(int ares_status, const char *name, uint32_t timeout_ms,
                    enum vp_reason *reason, char *detail, size_t len);

/* Frees a closed resolver. Accepts NULL; returns NULL. */
struct vp_dns *vp_dns_free(struct vp_dns *d);

#endif

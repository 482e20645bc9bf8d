/* What every reader of a listener table relies on, whichever source
 * filled it: shared by fuzz_listen_proc.c and fuzz_listen_diag.c. */
#ifndef VP_FUZZ_LISTEN_CHECK_H
#define VP_FUZZ_LISTEN_CHECK_H

#include <arpa/inet.h>
#include <sys/socket.h>

#include "probes/listeners.h"
#include "probes/verdict.h"
#include "tests/fuzz/fuzz.h"

/* A refused connect to this host on 'port', from loopback, from an
 * address of the lab's and from ::1: what the table makes of it. */
static inline void refine(const struct vp_listen_table *t, uint16_t port)
{
	struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	const struct sockaddr *sas[3] = { (struct sockaddr *)&v4, (struct sockaddr *)&v4,
	                                  (struct sockaddr *)&v6 };

	v6.sin6_addr = in6addr_loopback;
	for (size_t i = 0; i < 3; i++) {
		struct vp_verdict_out out = { .verdict = VP_VERDICT_REFUSED,
		                              .reason = VP_REASON_RST_TO_SYN };
		int r;

		v4.sin_addr.s_addr = htonl(i == 0 ? INADDR_LOOPBACK : 0xc6120001); /* 198.18.0.1 */
		r = vp_listen_refine_refused(t, sas[i], port, &out);
		VP_FUZZ_CHECK(r == 0 || r == 1);
		VP_FUZZ_CHECK(vp_fuzz_terminated(out.detail, sizeof(out.detail)));
		VP_FUZZ_CHECK(vp_fuzz_terminated(out.hint, sizeof(out.hint)));
		if (r == 1)
			VP_FUZZ_CHECK(out.verdict == VP_VERDICT_LOCALHOST_ONLY ||
			              out.verdict == VP_VERDICT_REFUSED);
	}
}

static inline void vp_fuzz_check_table(struct vp_listen_table *t)
{
	char text[INET6_ADDRSTRLEN];
	struct vp_listen_port p;

	VP_FUZZ_CHECK(t->n <= t->cap && t->n <= VP_LISTEN_SOCKETS_MAX);
	vp_listen_table_sort(t);
	for (size_t i = 0; i < t->n; i++) {
		const struct vp_listen_sock *s = &t->socks[i];

		VP_FUZZ_CHECK(s->family == AF_INET || s->family == AF_INET6);
		VP_FUZZ_CHECK(i == 0 || t->socks[i - 1].port <= s->port);
		vp_listen_addr_text(s, text, sizeof(text));
		VP_FUZZ_CHECK(vp_fuzz_terminated(text, sizeof(text)));
		(void)vp_listen_sock_overflowing(s);
		vp_listen_port_get(t, s->port, &p);
		VP_FUZZ_CHECK(p.n > 0 && p.socks != NULL && p.port == s->port);
		VP_FUZZ_CHECK(p.socks >= t->socks && p.socks + p.n <= t->socks + t->n);
		VP_FUZZ_CHECK(p.scope > VP_SCOPE_NOT_LISTENING && p.scope < VP_SCOPE_MAX);
		VP_FUZZ_CHECK(vp_listen_scope_name(p.scope) != NULL);
		refine(t, s->port);
	}
	vp_listen_port_get(t, 0, &p);
}

#endif

/* Verdicts and reasons: what a probe found, as machines and people read it.
 * State and reason are separate types, as in relayd's host_status/host_error. */
#ifndef VP_VERDICT_H
#define VP_VERDICT_H

#include <errno.h>

#include "agent/limits.h"

enum vp_verdict {
	VP_VERDICT_OK,
	VP_VERDICT_REFUSED,
	VP_VERDICT_LOCALHOST_ONLY,
	VP_VERDICT_TIMEOUT,
	VP_VERDICT_UNREACHABLE,
	VP_VERDICT_DNS_ERROR,
	VP_VERDICT_RESET,
	VP_VERDICT_TLS_ERROR,
	VP_VERDICT_PROTOCOL_ERROR,
	VP_VERDICT_LOCAL_ERROR,
	VP_VERDICT_MAX,
	VP_VERDICT_INVALID = -EINVAL,
};

enum vp_reason {
	VP_REASON_CONNECTED,          /* ok: handshake done */
	VP_REASON_RST_TO_SYN,         /* refused: RST answered the SYN */
	VP_REASON_SYN_NO_ANSWER,      /* timeout: nothing came back */
	VP_REASON_ADMIN_PROHIBITED,   /* unreachable: ICMP administratively prohibited */
	VP_REASON_HOST_UNREACHABLE,   /* unreachable: ICMP host unreachable */
	VP_REASON_NET_UNREACHABLE,    /* unreachable: ICMP network unreachable */
	VP_REASON_PORT_UNREACHABLE,   /* unreachable: ICMP port unreachable */
	VP_REASON_PROTOCOL_UNREACHABLE, /* unreachable: ICMP protocol unreachable */
	VP_REASON_TTL_EXCEEDED,       /* unreachable: ICMP time exceeded (a loop) */
	VP_REASON_NO_ROUTE,           /* unreachable: this host's routing table has none */
	VP_REASON_FD_EXHAUSTED,       /* local_error: EMFILE, ENFILE */
	VP_REASON_NO_LOCAL_ADDRESS,   /* local_error: EADDRNOTAVAIL, EADDRINUSE */
	VP_REASON_NO_BUFFERS,         /* local_error: ENOBUFS, ENOMEM */
	VP_REASON_LOCAL_POLICY,       /* local_error: EPERM, EACCES from this host's own rules */
	VP_REASON_LOCAL_OTHER,        /* local_error: anything else this host said */
	VP_REASON_LOOPBACK_BIND,      /* localhost_only: the port listens on 127.0.0.1 / ::1 only */
	VP_REASON_BOUND_OTHER_ADDRESS, /* refused: the port listens on other addresses of this host */
	VP_REASON_REPLY_TIMEOUT,      /* timeout: connected, but no reply before the deadline */
	VP_REASON_RESET_BEFORE_REPLY, /* reset: accepted, then reset before answering */
	VP_REASON_CLOSED_BEFORE_REPLY, /* reset: accepted, then closed before answering */
	VP_REASON_UNEXPECTED_REPLY,   /* protocol_error: the reply is not the protocol's */
	VP_REASON_PROTOCOL,           /* protocol_error etc.: the protocol names its own reason */
	VP_REASON_DNS_OTHER,          /* dns_error: the resolver failed otherwise */
	VP_REASON_NXDOMAIN,           /* dns_error: the name does not exist */
	VP_REASON_SERVFAIL,           /* dns_error: the DNS server failed (SERVFAIL) */
	VP_REASON_DNS_TIMEOUT,        /* dns_error: no answer before the deadline */
	VP_REASON_NO_ADDRESS,         /* dns_error: the name exists, with no A or AAAA record */
	VP_REASON_DNS_REFUSED,        /* dns_error: the DNS server refused (REFUSED) */
	VP_REASON_MAX,
	VP_REASON_INVALID = -EINVAL,
};

/* The strings of the contract: "ok", "refused", ... */
const char *vp_verdict_name(enum vp_verdict v);
/* "connected", "rst_to_syn", ... */
const char *vp_reason_name(enum vp_reason r);

#endif

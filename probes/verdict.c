/* One place that gives every verdict and reason its contract string. */
#include "probes/verdict.h"

static const char *const verdict_names[VP_VERDICT_MAX] = {
	[VP_VERDICT_OK] = "ok",
	[VP_VERDICT_REFUSED] = "refused",
	[VP_VERDICT_LOCALHOST_ONLY] = "localhost_only",
	[VP_VERDICT_TIMEOUT] = "timeout",
	[VP_VERDICT_UNREACHABLE] = "unreachable",
	[VP_VERDICT_DNS_ERROR] = "dns_error",
	[VP_VERDICT_RESET] = "reset",
	[VP_VERDICT_TLS_ERROR] = "tls_error",
	[VP_VERDICT_PROTOCOL_ERROR] = "protocol_error",
	[VP_VERDICT_LOCAL_ERROR] = "local_error",
};

static const char *const reason_names[VP_REASON_MAX] = {
	[VP_REASON_CONNECTED] = "connected",
	[VP_REASON_RST_TO_SYN] = "rst_to_syn",
	[VP_REASON_SYN_NO_ANSWER] = "syn_no_answer",
	[VP_REASON_ADMIN_PROHIBITED] = "admin_prohibited",
	[VP_REASON_HOST_UNREACHABLE] = "host_unreachable",
	[VP_REASON_NET_UNREACHABLE] = "net_unreachable",
	[VP_REASON_PORT_UNREACHABLE] = "port_unreachable",
	[VP_REASON_PROTOCOL_UNREACHABLE] = "protocol_unreachable",
	[VP_REASON_TTL_EXCEEDED] = "ttl_exceeded",
	[VP_REASON_NO_ROUTE] = "no_route",
	[VP_REASON_FD_EXHAUSTED] = "fd_exhausted",
	[VP_REASON_NO_LOCAL_ADDRESS] = "no_local_address",
	[VP_REASON_NO_BUFFERS] = "no_buffers",
	[VP_REASON_LOCAL_POLICY] = "local_policy",
	[VP_REASON_LOCAL_OTHER] = "local_other",
	[VP_REASON_LOOPBACK_BIND] = "loopback_bind",
	[VP_REASON_BOUND_OTHER_ADDRESS] = "bound_other_address",
	[VP_REASON_REPLY_TIMEOUT] = "reply_timeout",
	[VP_REASON_RESET_BEFORE_REPLY] = "reset_before_reply",
	[VP_REASON_CLOSED_BEFORE_REPLY] = "closed_before_reply",
	[VP_REASON_UNEXPECTED_REPLY] = "unexpected_reply",
	[VP_REASON_PROTOCOL] = "protocol",
	[VP_REASON_DNS_OTHER] = "dns_other",
	[VP_REASON_NXDOMAIN] = "nxdomain",
	[VP_REASON_SERVFAIL] = "servfail",
	[VP_REASON_DNS_TIMEOUT] = "dns_timeout",
	[VP_REASON_NO_ADDRESS] = "no_address",
	[VP_REASON_DNS_REFUSED] = "dns_refused",
};

const char *vp_verdict_name(enum vp_verdict v)
{
	if (v < 0 || v >= VP_VERDICT_MAX)
		return "invalid";
	return verdict_names[v];
}

const char *vp_reason_name(enum vp_reason r)
{
	if (r < 0 || r >= VP_REASON_MAX)
		return "invalid";
	return reason_names[r];
}

/* The connect classifier. Pure: observations in, verdict out.
 *
 * The order of evidence matters. An ICMP error read from the socket's error
 * queue is the most specific thing the kernel can tell (who answered, and
 * with which type and code), so it wins over the errno that connect()
 * reported: iptables' default REJECT sends ICMP port unreachable, which
 * connect() reports as ECONNREFUSED exactly like a RST, and users need the
 * two told apart. */
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "probes/classify.h"

static void set(struct vp_verdict_out *out, enum vp_verdict v, enum vp_reason r, int err)
{
	out->verdict = v;
	out->reason = r;
	out->err = err;
}

/* ICMPv4 destination unreachable codes (RFC 792, RFC 1812 5.2.7.1). */
static enum vp_reason icmp4_unreach_reason(uint8_t code)
{
	switch (code) {
	case ICMP_NET_UNREACH:
	case ICMP_NET_UNKNOWN:
	case ICMP_NET_UNR_TOS:
		return VP_REASON_NET_UNREACHABLE;
	case ICMP_PROT_UNREACH:
		return VP_REASON_PROTOCOL_UNREACHABLE;
	case ICMP_PORT_UNREACH:
		return VP_REASON_PORT_UNREACHABLE;
	case ICMP_NET_ANO:
	case ICMP_HOST_ANO:
	case ICMP_PKT_FILTERED:
	case ICMP_PREC_VIOLATION:
	case ICMP_PREC_CUTOFF:
		return VP_REASON_ADMIN_PROHIBITED;
	default: /* host unreachable, unknown, isolated, for TOS, source route failed */
		return VP_REASON_HOST_UNREACHABLE;
	}
}

/* ICMPv6 destination unreachable codes (RFC 4443 3.1). */
static enum vp_reason icmp6_unreach_reason(uint8_t code)
{
	switch (code) {
	case ICMP6_DST_UNREACH_NOROUTE:
	case ICMP6_DST_UNREACH_BEYONDSCOPE:
		return VP_REASON_NET_UNREACHABLE;
	case ICMP6_DST_UNREACH_ADMIN:
	case 5: /* source address failed ingress/egress policy */
	case 6: /* reject route to destination */
		return VP_REASON_ADMIN_PROHIBITED;
	case ICMP6_DST_UNREACH_NOPORT:
		return VP_REASON_PORT_UNREACHABLE;
	default: /* address unreachable */
		return VP_REASON_HOST_UNREACHABLE;
	}
}

/* Returns 0 with a verdict set, or -ENOENT when the ICMP error is of no
 * type we interpret (then the errno decides). */
static int classify_icmp(const struct vp_connect_obs *obs, struct vp_verdict_out *out)
{
	enum vp_reason r;

	if (obs->icmp_family == AF_INET && obs->icmp_type == ICMP_DEST_UNREACH)
		r = icmp4_unreach_reason(obs->icmp_code);
	else if (obs->icmp_family == AF_INET && obs->icmp_type == ICMP_TIME_EXCEEDED)
		r = VP_REASON_TTL_EXCEEDED;
	else if (obs->icmp_family == AF_INET6 && obs->icmp_type == ICMP6_DST_UNREACH)
		r = icmp6_unreach_reason(obs->icmp_code);
	else if (obs->icmp_family == AF_INET6 && obs->icmp_type == ICMP6_TIME_EXCEEDED)
		r = VP_REASON_TTL_EXCEEDED;
	else
		return -ENOENT;
	set(out, VP_VERDICT_UNREACHABLE, r, obs->err);
	return 0;
}

/* Errors that this host gave before or without any answer from the network:
 * the agent's own trouble, never the target's. */
static void classify_local(int err, struct vp_verdict_out *out)
{
	switch (err) {
	case ENETUNREACH:
	case EHOSTUNREACH:
		/* Said by connect() at once: the local routing table has no route. */
		set(out, VP_VERDICT_UNREACHABLE, VP_REASON_NO_ROUTE, err);
		break;
	case ECONNREFUSED:
		set(out, VP_VERDICT_REFUSED, VP_REASON_RST_TO_SYN, err);
		break;
	case EMFILE:
	case ENFILE:
		set(out, VP_VERDICT_LOCAL_ERROR, VP_REASON_FD_EXHAUSTED, err);
		break;
	case EADDRNOTAVAIL:
	case EADDRINUSE:
	case EAGAIN:
		set(out, VP_VERDICT_LOCAL_ERROR, VP_REASON_NO_LOCAL_ADDRESS, err);
		break;
	case ENOBUFS:
	case ENOMEM:
		set(out, VP_VERDICT_LOCAL_ERROR, VP_REASON_NO_BUFFERS, err);
		break;
	case EPERM:
	case EACCES:
		set(out, VP_VERDICT_LOCAL_ERROR, VP_REASON_LOCAL_POLICY, err);
		break;
	default:
		set(out, VP_VERDICT_LOCAL_ERROR, VP_REASON_LOCAL_OTHER, err);
		break;
	}
}

/* A failure reported after the SYN left, with no ICMP error we interpret. */
static void classify_async(int err, struct vp_verdict_out *out)
{
	switch (err) {
	case ECONNREFUSED:
		set(out, VP_VERDICT_REFUSED, VP_REASON_RST_TO_SYN, err);
		break;
	case ECONNRESET:
		/* A RST in SYN_SENT gives ECONNREFUSED; ECONNRESET means the
		 * handshake completed and the peer reset before we saw it. */
		set(out, VP_VERDICT_RESET, VP_REASON_RESET_BEFORE_REPLY, err);
		break;
	case ETIMEDOUT:
		set(out, VP_VERDICT_TIMEOUT, VP_REASON_SYN_NO_ANSWER, err);
		break;
	case ENETUNREACH:
		set(out, VP_VERDICT_UNREACHABLE, VP_REASON_NET_UNREACHABLE, err);
		break;
	case EHOSTUNREACH:
	case EHOSTDOWN:
		set(out, VP_VERDICT_UNREACHABLE, VP_REASON_HOST_UNREACHABLE, err);
		break;
	default:
		classify_local(err, out);
		break;
	}
}

void vp_classify_connect_verdict(const struct vp_connect_obs *obs, struct vp_verdict_out *out)
{
	out->reason_text[0] = '\0';
	out->detail[0] = '\0';
	out->hint[0] = '\0';
	switch (obs->event) {
	case VP_CONNECT_DONE:
		set(out, VP_VERDICT_OK, VP_REASON_CONNECTED, 0);
		break;
	case VP_CONNECT_DEADLINE:
		set(out, VP_VERDICT_TIMEOUT, VP_REASON_SYN_NO_ANSWER, ETIMEDOUT);
		break;
	case VP_CONNECT_SETUP_FAILED:
		classify_local(obs->err, out);
		break;
	case VP_CONNECT_FAILED:
		if (obs->icmp_family == 0 || classify_icmp(obs, out) < 0)
			classify_async(obs->err, out);
		break;
	default:
		set(out, VP_VERDICT_LOCAL_ERROR, VP_REASON_LOCAL_OTHER, obs->err);
		break;
	}
}

void vp_classify_connect(const struct vp_connect_obs *obs, struct vp_verdict_out *out)
{
	vp_classify_connect_verdict(obs, out);
	vp_explain_connect(obs, out);
}

/* The sentences of a verdict: 'detail' says what was seen on the wire,
 * 'hint' names the likely cause in Cloud Run / Serverless VPC Access terms
 * and the next thing to type. Pure, like the classifier. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "probes/classify.h"

const char *vp_errno_name(int err)
{
	const char *s;

	if (err == 0)
		return NULL;
	s = strerrorname_np(err);
	return s ? s : "EUNKNOWN";
}

/* "198.18.0.2:5432" or "[fd00::2]:5432". */
static const char *hostport(char *buf, size_t len, const char *addr, unsigned port)
{
	snprintf(buf, len, strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr, port);
	return buf;
}

const char *vp_verdict_reason(const struct vp_verdict_out *v)
{
	if (v->reason == VP_REASON_PROTOCOL && v->reason_text[0])
		return v->reason_text;
	return vp_reason_name(v->reason);
}

static const char *icmp_name(const struct vp_connect_obs *obs)
{
	return obs->icmp_family == AF_INET6 ? "ICMPv6" : "ICMP";
}

/* The sender of the ICMP error, or a neutral phrase when it is unknown. */
static const char *icmp_from(const struct vp_connect_obs *obs)
{
	return obs->icmp_from[0] ? obs->icmp_from : "a router on the path";
}

/* Whether the classifier took its reason from the ICMP error: destination
 * unreachable and time exceeded, in either family. */
static bool icmp_explains(const struct vp_connect_obs *obs)
{
	if (obs->icmp_family == AF_INET)
		return obs->icmp_type == 3 || obs->icmp_type == 11;
	if (obs->icmp_family == AF_INET6)
		return obs->icmp_type == 1 || obs->icmp_type == 3;
	return false;
}

static void explain_unreachable(const struct vp_connect_obs *o, struct vp_verdict_out *out)
{
	const char *a = o->address;
	unsigned p = o->port;
	char ap[80];

	hostport(ap, sizeof(ap), a, p);
	if (out->reason == VP_REASON_NO_ROUTE) {
		snprintf(out->detail, sizeof(out->detail),
		         "connect: %s: this host's routing table has no route to %s", strerror(out->err), a);
		snprintf(out->hint, sizeof(out->hint),
		         "The diagnostic VM itself has no route to %s: check `ip route get %s`, that the VM "
		         "sits in the VPC network and region you expect, and, for a Cloud SQL private IP, that "
		         "private services access (VPC peering) is set up for this network.", a, a);
		return;
	}
	if (icmp_explains(o))
		snprintf(out->detail, sizeof(out->detail), "%s %s (type %u code %u) from %s for tcp:%u",
		         icmp_name(o), vp_reason_name(out->reason), o->icmp_type, o->icmp_code,
		         icmp_from(o), p);
	else if (o->icmp_family)
		snprintf(out->detail, sizeof(out->detail), "connect: %s (%s) for %s, after %s type %u "
		         "code %u from %s", strerror(out->err), vp_reason_name(out->reason), ap,
		         icmp_name(o), o->icmp_type, o->icmp_code, icmp_from(o));
	else
		snprintf(out->detail, sizeof(out->detail), "connect: %s (%s) for %s",
		         strerror(out->err), vp_reason_name(out->reason), ap);

	switch (out->reason) {
	case VP_REASON_ADMIN_PROHIBITED:
		snprintf(out->hint, sizeof(out->hint),
		         "A firewall REJECT rule refuses tcp:%u to %s (administratively prohibited, answered by %s): "
		         "look for a host firewall on the target (`nft list ruleset`, `iptables -S`) or an "
		         "appliance on the path; VPC firewall rules drop silently and never send this.",
		         p, a, icmp_from(o));
		break;
	case VP_REASON_PORT_UNREACHABLE:
	case VP_REASON_PROTOCOL_UNREACHABLE:
		snprintf(out->hint, sizeof(out->hint),
		         "A REJECT rule on the target answers tcp:%u with %s unreachable (iptables' default "
		         "REJECT), which clients report as \"connection refused\": check the target VM's own "
		         "firewall (`iptables -S`, `nft list ruleset`) for a rule on port %u.",
		         p, out->reason == VP_REASON_PORT_UNREACHABLE ? "port" : "protocol", p);
		break;
	case VP_REASON_HOST_UNREACHABLE:
		snprintf(out->hint, sizeof(out->hint),
		         "%s says host %s cannot be reached: the VM may be stopped, or no instance has this "
		         "address (`gcloud compute instances list --filter=\"networkInterfaces.networkIP=%s\"`).",
		         icmp_from(o), a, a);
		break;
	case VP_REASON_NET_UNREACHABLE:
		snprintf(out->hint, sizeof(out->hint),
		         "%s has no route to %s's network: a VPC peering or custom route is missing (Cloud SQL "
		         "private IP needs private services access: `gcloud services vpc-peerings list "
		         "--network=NETWORK`), or the connector is in another VPC network or region.",
		         icmp_from(o), a);
		break;
	default: /* VP_REASON_TTL_EXCEEDED */
		snprintf(out->hint, sizeof(out->hint),
		         "Packets to %s expire on the way (%s): a routing loop between custom routes or "
		         "appliances; trace it with `traceroute -T -p %u %s`.", a, icmp_from(o), p, a);
		break;
	}
}

static void explain_local(const struct vp_connect_obs *o, struct vp_verdict_out *out)
{
	const char *why;
	char ap[80];

	snprintf(out->detail, sizeof(out->detail), "%s: %s (%s); this is the agent's own trouble, "
	         "not the target's", o->op ? o->op : "connect", strerror(out->err),
	         vp_errno_name(out->err));
	switch (out->reason) {
	case VP_REASON_FD_EXHAUSTED:
		why = "the agent ran out of file descriptors: raise LimitNOFILE in the unit or lower "
		      "agent.max_in_flight";
		break;
	case VP_REASON_NO_LOCAL_ADDRESS:
		why = "no local port or source address was free: widen net.ipv4.ip_local_port_range or "
		      "lower agent.max_in_flight";
		break;
	case VP_REASON_NO_BUFFERS:
		why = "the kernel is short of memory or socket buffers on the diagnostic VM";
		break;
	case VP_REASON_LOCAL_POLICY:
		why = "a firewall rule or route on the diagnostic VM itself blocks the probe: check "
		      "`nft list ruleset` and `ip route get` for the target";
		break;
	default:
		why = "an unexpected error on the diagnostic VM; the target was not judged";
		break;
	}
	snprintf(out->hint, sizeof(out->hint), "Nothing is known about %s yet: %s.",
	         hostport(ap, sizeof(ap), o->address, o->port), why);
}

void vp_explain_connect(const struct vp_connect_obs *o, struct vp_verdict_out *out)
{
	const char *a = o->address ? o->address : "?";
	unsigned p = o->port;
	struct vp_connect_obs named = *o;
	char ap[80];

	named.address = a;
	hostport(ap, sizeof(ap), a, p);
	out->detail[0] = '\0';
	out->hint[0] = '\0';
	switch (out->verdict) {
	case VP_VERDICT_OK:
		if (o->kind == VP_KIND_TCP)
			snprintf(out->detail, sizeof(out->detail), "TCP handshake with %s done", ap);
		else
			snprintf(out->detail, sizeof(out->detail),
			         "TCP handshake with %s done; %s:// is checked at the TCP level only "
			         "(its protocol probe is not built yet)", ap, vp_kind_name(o->kind));
		break;
	case VP_VERDICT_REFUSED:
		snprintf(out->detail, sizeof(out->detail), "connection refused: %s answered the SYN to "
		         "port %u with a reset", a, p);
		snprintf(out->hint, sizeof(out->hint),
		         "The host is reachable but nothing accepts connections on %s: check that the "
		         "service runs and on which address it listens (`ss -ltnp 'sport = :%u'` on the "
		         "target); a service bound to 127.0.0.1 refuses the VM's internal address, so bind "
		         "it to 0.0.0.0 or to that address.", ap, p);
		break;
	case VP_VERDICT_TIMEOUT:
		snprintf(out->detail, sizeof(out->detail), "no answer to SYN within %u ms", o->timeout_ms);
		snprintf(out->hint, sizeof(out->hint),
		         "A VPC firewall rule probably drops this traffic: check that an ingress rule admits "
		         "the Serverless VPC Access connector's /28 range to tcp:%u on %s (`gcloud compute "
		         "firewall-rules list --filter=\"direction=INGRESS\"`), and that the connector is in "
		         "the service's region.", p, a);
		break;
	case VP_VERDICT_UNREACHABLE:
		explain_unreachable(&named, out);
		break;
	case VP_VERDICT_RESET:
		snprintf(out->detail, sizeof(out->detail), "%s accepted the connection, then reset it "
		         "at once", ap);
		snprintf(out->hint, sizeof(out->hint),
		         "Something accepts connections on %s but drops them at once: an overloaded "
		         "service, a proxy or load balancer without a healthy backend, or another service "
		         "than the one you expect on port %u; check the target's logs.", ap, p);
		break;
	default:
		explain_local(&named, out);
		break;
	}
}

/* One target as the status page and the API show it: its state, the
 * result that explains it, the time since it changed, the last hour, and
 * the commands to type next, filled in with this target's values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/status_int.h"

struct badge {
	const char *icon;   /* a shape that reads without colour */
	const char *text;
};

/* Indexed by verdict; the last row is "pending". status_assets.c's script
 * holds the same table. */
static const struct badge badges[VP_VERDICT_MAX + 1] = {
	[VP_VERDICT_OK] = { "\u2713", "OK" },
	[VP_VERDICT_REFUSED] = { "\u2715", "REFUSED" },
	[VP_VERDICT_LOCALHOST_ONLY] = { "\u2302", "LOCALHOST ONLY" },
	[VP_VERDICT_TIMEOUT] = { "\u25f7", "TIMEOUT" },
	[VP_VERDICT_UNREACHABLE] = { "\u2298", "UNREACHABLE" },
	[VP_VERDICT_DNS_ERROR] = { "?", "DNS ERROR" },
	[VP_VERDICT_RESET] = { "\u21af", "RESET" },
	[VP_VERDICT_TLS_ERROR] = { "\u26a0", "TLS ERROR" },
	[VP_VERDICT_PROTOCOL_ERROR] = { "\u26a0", "PROTOCOL ERROR" },
	[VP_VERDICT_LOCAL_ERROR] = { "\u2699", "LOCAL ERROR" },
	[VP_VERDICT_MAX] = { "\u2026", "PENDING" },
};

static const struct badge *badge_of(enum vp_verdict v)
{
	return &badges[v >= 0 && v < VP_VERDICT_MAX ? v : VP_VERDICT_MAX];
}

const char *vp_status_badge_icon(enum vp_verdict v)
{
	return badge_of(v)->icon;
}

const char *vp_status_badge_text(enum vp_verdict v)
{
	return badge_of(v)->text;
}

int64_t vp_status_realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "198.18.0.2:5432" or "[fd00::2]:5432". */
static void hostport(char *buf, size_t len, const char *addr, unsigned port)
{
	snprintf(buf, len, strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr, port);
}

#define STEP(...) (n < max ? (void)snprintf(steps[n++], VP_STATUS_STEP_MAX, __VA_ARGS__) : (void)0)

/* Whether 'name' can stand in a command unquoted: a GCP resource name
 * (lower-case letters, digits and hyphens, at most 63). */
static bool gcp_name(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > 63 || name[0] < 'a' || name[0] > 'z')
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") == len;
}

/* A timeout is a VPC firewall dropping the connector's packets until shown
 * otherwise: list the rules that open this port (in the agent's network
 * when the metadata server named it), then (with the range the config
 * names) the rule that would admit the connector. Without a network the
 * command says NETWORK for the engineer to fill in. */
static size_t timeout_steps(const struct vp_target *t, const char *addr, unsigned port,
                            const char *network, char (*steps)[VP_STATUS_STEP_MAX], size_t max)
{
	const char *net = gcp_name(network) ? network : NULL;
	size_t n = 0;

	if (net)
		STEP("gcloud compute firewall-rules list --filter=\"network~/%s$ AND "
		     "direction=INGRESS AND allowed[].ports:%u\" --format=\"table(name,network,"
		     "sourceRanges.list(),allowed[].map().firewall_rule().list(),disabled)\"", net,
		     port);
	else
		STEP("gcloud compute firewall-rules list --filter=\"direction=INGRESS AND "
		     "allowed[].ports:%u\" --format=\"table(name,network,sourceRanges.list(),"
		     "allowed[].map().firewall_rule().list(),disabled)\"", port);
	net = net ? net : "NETWORK";
	if (t->connector_range.family == 0) {
		STEP("gcloud compute networks vpc-access connectors list --region=REGION "
		     "--format=\"table(name,network,ipCidrRange,state)\"");
		return n;
	}
	if (strchr(addr, ':') == NULL && addr[0] != '\0')
		STEP("gcloud compute firewall-rules create allow-vpc-connector-tcp-%u --network=%s "
		     "--direction=INGRESS --action=ALLOW --rules=tcp:%u --source-ranges=%s "
		     "--destination-ranges=%s/32", port, net, port, t->connector_range.text, addr);
	else
		STEP("gcloud compute firewall-rules create allow-vpc-connector-tcp-%u --network=%s "
		     "--direction=INGRESS --action=ALLOW --rules=tcp:%u --source-ranges=%s",
		     port, net, port, t->connector_range.text);
	return n;
}

static size_t protocol_steps(const struct vp_target *t, const char *addr, unsigned port,
                             char (*steps)[VP_STATUS_STEP_MAX], size_t max)
{
	size_t n = 0;

	switch (t->url.kind) {
	case VP_KIND_POSTGRES:
		STEP("psql \"host=%s port=%u\" -c 'select 1'", addr, port);
		break;
	case VP_KIND_REDIS:
		STEP("redis-cli -h %s -p %u PING", addr, port);
		break;
	case VP_KIND_REDISS:
		STEP("redis-cli --tls -h %s -p %u PING", addr, port);
		break;
	default:
		/* The URL is shell-quoted only when it holds no quote. */
		if (strchr(t->url_text, '\'') == NULL)
			STEP("curl -sv --max-time 5 '%s'", t->url_text);
		break;
	}
	return n;
}

size_t vp_status_next_steps(const struct vp_target *t, const struct vp_probe_result *r,
                            const char *network, char (*steps)[VP_STATUS_STEP_MAX], size_t max)
{
	const char *addr = r->address[0] != '\0' ? r->address : t->url.host;
	unsigned port = r->port != 0 ? r->port : t->url.port;
	char ap[VP_HOST_MAX + 8];
	size_t n = 0;

	hostport(ap, sizeof(ap), addr, port);
	switch (r->v.verdict) {
	case VP_VERDICT_TIMEOUT:
		return timeout_steps(t, addr, port, network, steps, max);
	case VP_VERDICT_REFUSED:
	case VP_VERDICT_LOCALHOST_ONLY:
		STEP("ss -ltnp 'sport = :%u'    # on %s: who listens, on which address", port, addr);
		STEP("vpcprobe listeners %u    # on %s", port, addr);
		break;
	case VP_VERDICT_UNREACHABLE:
		STEP("ip route get %s", addr);
		STEP("traceroute -T -p %u %s", port, addr);
		break;
	case VP_VERDICT_DNS_ERROR:
		STEP("getent ahosts %s", t->url.host);
		STEP("gcloud dns managed-zones list --filter=\"visibility=private\"");
		break;
	case VP_VERDICT_RESET:
		STEP("nc -vz %s %u", addr, port);
		break;
	case VP_VERDICT_TLS_ERROR:
		STEP("openssl s_client -connect %s -servername %s </dev/null", ap, t->url.host);
		break;
	case VP_VERDICT_PROTOCOL_ERROR:
		return protocol_steps(t, addr, port, steps, max);
	case VP_VERDICT_LOCAL_ERROR:
		STEP("systemctl show vpcprobe -p LimitNOFILE -p MemoryMax");
		STEP("ip route get %s", addr);
		break;
	default:
		break;
	}
	return n;
}

void vp_status_view_of(const struct vp_sched_target *st, int64_t now_ms, struct vp_status_view *v)
{
	const struct vp_history_entry *e = vp_history_get(&st->history, 0);

	memset(v, 0, sizeof(*v));
	v->st = st;
	v->latency_ms = -1;
	vp_spark_buckets(&st->history, now_ms, v->spark);
	if (st->runs == 0) {
		v->state = VP_STATE_PENDING;
		return;
	}
	v->state = st->verdict == VP_VERDICT_OK ? VP_STATE_OK : VP_STATE_FAILING;
	for (size_t i = 0; i < st->n_last && v->worst == NULL; i++)
		if (st->last[i].v.verdict == st->verdict)
			v->worst = &st->last[i];
	if (v->worst == NULL && st->n_last > 0)
		v->worst = &st->last[0];
	if (e != NULL) {
		v->latency_ms = e->total_ms;
		v->last_ms = e->time_ms;
	}
	vp_fmt_since(v->state == VP_STATE_OK ? "ok for " : "failing for ", st->changed_ms, now_ms,
	             v->since, sizeof(v->since));
	if (v->state == VP_STATE_FAILING && v->worst != NULL)
		v->n_steps = vp_status_next_steps(st->target, v->worst, NULL, v->steps,
		                                  VP_STATUS_STEPS_MAX);
}

size_t *vp_status_order(struct vp_scheduler *s)
{
	size_t n = vp_scheduler_count(s), k = 0;
	size_t *idx = n > 0 ? malloc(n * sizeof(*idx)) : NULL;

	if (idx == NULL)
		return NULL;
	/* Three passes keep config order within each group without a sort. */
	for (int pass = 0; pass < VP_STATE_MAX; pass++) {
		for (size_t i = 0; i < n; i++) {
			const struct vp_sched_target *st = vp_scheduler_target(s, i);
			int state = st->runs == 0 ? VP_STATE_PENDING :
			            st->verdict == VP_VERDICT_OK ? VP_STATE_OK : VP_STATE_FAILING;

			if (state == pass)
				idx[k++] = i;
		}
	}
	return idx;
}

void vp_status_counts(struct vp_scheduler *s, size_t counts[VP_VERDICT_MAX + 1])
{
	memset(counts, 0, sizeof(*counts) * (VP_VERDICT_MAX + 1));
	for (size_t i = 0; i < vp_scheduler_count(s); i++) {
		const struct vp_sched_target *st = vp_scheduler_target(s, i);

		if (st->runs == 0)
			counts[VP_VERDICT_MAX]++;
		else if (st->verdict >= 0 && st->verdict < VP_VERDICT_MAX)
			counts[st->verdict]++;
	}
}

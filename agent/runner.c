#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/curl_uv.h"
#include "agent/peer.h"
#include "agent/runner.h"
#include "probes/dns.h"
#include "probes/listeners.h"

/* A refused probe of a target with agent_url waits for that agent's
 * answer (peer.h); one of these per ask in flight, in the runner's list so
 * that closing can cancel them. */
struct peer_wait {
	struct vp_runner *r;              /* borrowed */
	struct vp_target_run *tr;         /* borrowed, busy until the answer */
	size_t i;                         /* the result asked about */
	struct vp_peer_req *q;            /* the ask, freed by peer.c */
	struct peer_wait *prev, *next;
};

/* A refusal on one of this host's addresses is looked up in the listener
 * table; one reading serves every refusal within this many ms. */
#define LISTEN_TABLE_TTL_MS 1000

struct vp_runner {
	uv_loop_t *loop;                  /* borrowed */
	const struct vp_config *cfg;      /* borrowed */
	struct vp_engine *engine;         /* owned */
	struct vp_dns *dns;               /* owned, made at the first name */
	char dns_err[VP_ERR_MAX];         /* why 'dns' could not be made */
	struct vp_local_addrs local;      /* owned: this host's addresses, when read */
	struct vp_listen_table listen;    /* owned: this host's listeners, when read */
	uint64_t listen_read_ms;          /* loop time of that reading */
	bool listen_valid;
	struct vp_curlm *cm;              /* owned reference, made at the first ask of a peer */
	struct peer_wait *waits;          /* owned: asks of peer agents in flight */
	bool stopping;                    /* vp_runner_close() was called */
	int closing;                      /* parts still closing */
	void (*closed)(void *arg);
	void *closed_arg;
};

/* A refused connect to an address of this host: if the port listens on
 * loopback only, or on other addresses only, say so (localhost_only). */
static void refine_local_refusal(struct vp_runner *r, const struct vp_probe_req *req,
                                 struct vp_probe_result *res)
{
	uint64_t now = uv_now(r->loop);
	const struct sockaddr *sa = (const struct sockaddr *)&req->addr;

	if (res->v.verdict != VP_VERDICT_REFUSED || !vp_local_addrs_has(&r->local, sa, now))
		return;
	if (!r->listen_valid || now - r->listen_read_ms > LISTEN_TABLE_TTL_MS) {
		/* A sock_diag dump of this host: one short blocking read, taken
		 * only for refusals on this host and at most once a second. */
		r->listen_valid = vp_listen_read(&r->listen, VP_LISTEN_SOURCE_AUTO) == 0;
		r->listen_read_ms = now;
	}
	if (r->listen_valid)
		(void)vp_listen_refine_refused(&r->listen, sa, res->port, &res->v); /* 0: unchanged */
}

/* One result of 'tr' is final: the run ends with the last one. */
static void result_final(struct vp_target_run *tr)
{
	if (--tr->pending == 0) {
		tr->busy = false;
		tr->done(tr);
	}
}

static void on_peer_reply(const struct vp_peer_reply *rep, void *arg)
{
	struct peer_wait *w = arg;
	struct vp_target_run *tr = w->tr;
	struct vp_probe_result *res = &tr->results[w->i];
	const char *url = tr->target->agent_url;

	if (w->prev)
		w->prev->next = w->next;
	else
		w->r->waits = w->next;
	if (w->next)
		w->next->prev = w->prev;
	if (rep->status == 0)
		vp_peer_refine(&rep->answer, (const struct sockaddr *)&tr->reqs[w->i].addr,
		               res->address, url, &res->v);
	else
		vp_peer_unasked(res->address, res->port, url, rep->why, &res->v);
	free(w);
	result_final(tr);
}

/* A refusal (RST to the SYN) of a target that names its host's agent: ask
 * that agent for its listeners on the port, within what is left of the
 * run's timeout. Returns whether the ask is in flight (then the result is
 * final only once it answers); otherwise the detail says why not. */
static bool ask_peer(struct vp_runner *r, struct vp_target_run *tr, size_t i)
{
	const struct vp_target *t = tr->target;
	struct vp_probe_result *res = &tr->results[i];
	uint64_t spent_ms = (uv_hrtime() - tr->start_ns) / 1000000;
	uint32_t left = spent_ms < tr->timeout_ms ? tr->timeout_ms - (uint32_t)spent_ms : 0;
	struct peer_wait *w = NULL;
	int e = -ENOMEM;

	if (t->agent_url == NULL || r->stopping || res->v.verdict != VP_VERDICT_REFUSED ||
	    res->v.reason != VP_REASON_RST_TO_SYN)
		return false;
	if (left < VP_PEER_MIN_MS) {
		vp_peer_unasked(res->address, res->port, t->agent_url,
		                "no time was left within the probe's timeout_ms", &res->v);
		return false;
	}
	if (r->cm == NULL)
		r->cm = vp_curlm_new(r->loop);
	w = calloc(1, sizeof(*w));
	if (r->cm != NULL && w != NULL) {
		w->r = r;
		w->tr = tr;
		w->i = i;
		e = vp_peer_ask(r->cm, t->agent_url, t->agent_token, res->port,
		                left < VP_PEER_TIMEOUT_MS ? left : VP_PEER_TIMEOUT_MS, on_peer_reply, w,
		                &w->q);
	}
	if (e < 0) {
		free(w);
		vp_peer_unasked(res->address, res->port, t->agent_url, strerror(-e), &res->v);
		return false;
	}
	w->next = r->waits;
	if (r->waits)
		r->waits->prev = w;
	r->waits = w;
	return true;
}

/* A record speaks of the whole run, not of its connect alone (issue 8):
 * 'total' counts from the run's start, DNS included, and a timeout's detail
 * names the run's timeout_ms. The connect was given what was left of the
 * run when it was submitted, in whole ms rounded in its favour, so a timeout
 * record's total is never below the timeout_ms its detail names. Left out
 * is the wait between the submit and the connect's start (a free engine
 * slot, the next start batch): the agent's own queue, which neither takes
 * time from the connect's budget nor counts against the target (with 1,000
 * literal targets at once the connects start up to tens of ms after their
 * submit on this 2-core VM). */
static void run_timings(const struct vp_target_run *tr, struct vp_probe_result *res)
{
	if (res->end_ns >= res->start_ns && tr->submit_ns >= tr->start_ns)
		res->total_ms = (double)((tr->submit_ns - tr->start_ns) + (res->end_ns - res->start_ns)) / 1e6;
	res->obs.timeout_ms = tr->timeout_ms;
}

static void on_probe_result(struct vp_probe_req *req, const struct vp_probe_result *res, void *arg)
{
	struct vp_target_run *tr = req->data;
	size_t i = (size_t)(req - tr->reqs);
	double dns_ms = tr->results[i].dns_ms;   /* set at submit: the engine knows no DNS */

	(void)arg;
	tr->results[i] = *res;
	tr->results[i].dns_ms = dns_ms;
	tr->results[i].obs.address = tr->results[i].address;
	run_timings(tr, &tr->results[i]);
	vp_probe_result_explain(&tr->results[i]);
	refine_local_refusal(tr->runner, req, &tr->results[i]);
	if (!ask_peer(tr->runner, tr, i))
		result_final(tr);
}

struct vp_runner *vp_runner_new(uv_loop_t *loop, const struct vp_config *cfg)
{
	struct vp_runner *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->loop = loop;
	r->cfg = cfg;
	vp_local_addrs_init(&r->local);
	vp_listen_table_init(&r->listen);
	r->engine = vp_engine_new(loop, cfg->max_in_flight, on_probe_result, r);
	if (!r->engine) {
		free(r);
		return NULL;
	}
	return r;
}

void vp_target_run_clear(struct vp_target_run *tr)
{
	free(tr->results);
	free(tr->reqs);
	tr->results = NULL;
	tr->reqs = NULL;
	tr->n_results = 0;
}

/* Allocates room for 'n' probes; on failure the run ends as a local error. */
static int alloc_run(struct vp_target_run *tr, size_t n)
{
	vp_target_run_clear(tr);
	tr->results = calloc(n, sizeof(*tr->results));
	tr->reqs = calloc(n, sizeof(*tr->reqs));
	if (!tr->results || !tr->reqs) {
		vp_target_run_clear(tr);
		return -ENOMEM;
	}
	tr->n_results = n;
	return 0;
}

static void submit_addresses(struct vp_runner *r, struct vp_target_run *tr,
                             const struct sockaddr_storage *addrs, size_t n, double dns_ms)
{
	uint64_t spent_ms;
	uint32_t left;

	tr->submit_ns = uv_hrtime();
	spent_ms = (tr->submit_ns - tr->start_ns) / 1000000;
	left = spent_ms + 1 < tr->timeout_ms ? tr->timeout_ms - (uint32_t)spent_ms : 1;

	tr->pending = n;
	for (size_t i = 0; i < n; i++) {
		struct vp_probe_req *req = &tr->reqs[i];

		req->addr = addrs[i];
		if (req->addr.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&req->addr)->sin6_port = htons(tr->target->url.port);
		else
			((struct sockaddr_in *)&req->addr)->sin_port = htons(tr->target->url.port);
		req->timeout_ms = left;
		req->kind = tr->target->url.kind;
		req->target = tr->target;
		req->data = tr;
		tr->results[i].dns_ms = dns_ms;
	}
	for (size_t i = 0; i < n; i++)
		vp_engine_submit(r->engine, &tr->reqs[i]);
}

/* A run that ends before any probe: a DNS failure, or no memory. */
static void fail_run(struct vp_target_run *tr, enum vp_verdict v, enum vp_reason reason,
                     const char *detail, double dns_ms)
{
	struct vp_probe_result *res;

	if (alloc_run(tr, 1) < 0) {
		tr->busy = false;
		tr->done(tr);   /* with no results: the owner reports the lack */
		return;
	}
	res = &tr->results[0];
	res->explained = true;
	res->v.verdict = v;
	res->v.reason = reason;
	snprintf(res->v.detail, sizeof(res->v.detail), "%s", detail);
	if (v == VP_VERDICT_DNS_ERROR)
		vp_dns_hint(reason, tr->target->url.host, res->v.hint, sizeof(res->v.hint));
	res->port = tr->target->url.port;
	res->connect_ms = res->protocol_ms = -1.0;
	/* No TLS began and no certificate was seen: "unknown", not the zeroes
	 * of calloc (0 ms, a certificate that expires today) (issue 4). */
	res->tls_ms = -1.0;
	res->cert_days_left = VP_CERT_DAYS_UNKNOWN;
	res->dns_ms = dns_ms;
	res->total_ms = (double)(uv_hrtime() - tr->start_ns) / 1e6;
	clock_gettime(CLOCK_REALTIME, &res->wall);
	tr->busy = false;
	tr->done(tr);
}

/* The lookup's share of a run's timeout_ms (VP_DNS_BUDGET_PCT), at least
 * 1 ms. */
static uint32_t dns_budget_ms(uint32_t timeout_ms)
{
	uint64_t ms = (uint64_t)timeout_ms * VP_DNS_BUDGET_PCT / 100;

	return ms > 0 ? (uint32_t)ms : 1;
}

static void on_dns(const struct vp_dns_answer *ans, void *arg)
{
	struct vp_target_run *tr = arg;

	if (tr->runner->stopping) {
		tr->busy = false;
		return;
	}
	if (ans->status < 0) {
		char detail[VP_DETAIL_MAX];
		int n = snprintf(detail, sizeof(detail), "%s", ans->detail);

		/* Say that the deadline was DNS's share, not the whole timeout. */
		if (ans->reason == VP_REASON_DNS_TIMEOUT && n >= 0 && (size_t)n < sizeof(detail))
			snprintf(detail + n, sizeof(detail) - (size_t)n,
			         " (the DNS budget: %d%% of timeout_ms %" PRIu32 " ms)", VP_DNS_BUDGET_PCT,
			         tr->timeout_ms);
		fail_run(tr, VP_VERDICT_DNS_ERROR, ans->reason, detail, ans->ms);
		return;
	}
	if (alloc_run(tr, ans->n_addrs) < 0) {
		fail_run(tr, VP_VERDICT_LOCAL_ERROR, VP_REASON_NO_BUFFERS,
		         "out of memory for the probes of this target", ans->ms);
		return;
	}
	submit_addresses(tr->runner, tr, ans->addrs, ans->n_addrs, ans->ms);
}

/* The address of a host given as an IP literal. */
static int literal_address(const struct vp_url *u, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (u->host_type == VP_HOST_IPV4) {
		ss->ss_family = AF_INET;
		return inet_pton(AF_INET, u->host, &((struct sockaddr_in *)ss)->sin_addr) == 1 ? 0 : -EINVAL;
	}
	ss->ss_family = AF_INET6;
	return inet_pton(AF_INET6, u->host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1 ? 0 : -EINVAL;
}

void vp_runner_start(struct vp_runner *r, struct vp_target_run *tr)
{
	const struct vp_url *u = &tr->target->url;
	struct sockaddr_storage ss;

	tr->runner = r;
	tr->busy = true;
	tr->start_ns = uv_hrtime();
	if (u->host_type != VP_HOST_NAME) {
		if (literal_address(u, &ss) < 0 || alloc_run(tr, 1) < 0) {
			fail_run(tr, VP_VERDICT_LOCAL_ERROR, VP_REASON_LOCAL_OTHER,
			         "could not prepare the probe of this address", -1.0);
			return;
		}
		submit_addresses(r, tr, &ss, 1, -1.0);
		return;
	}
	if (!r->dns && !r->dns_err[0])
		r->dns = vp_dns_new(r->loop, r->cfg->dns_servers, r->cfg->n_dns_servers, r->dns_err,
		                    sizeof(r->dns_err));
	if (!r->dns) {
		fail_run(tr, VP_VERDICT_DNS_ERROR, VP_REASON_DNS_OTHER, r->dns_err, -1.0);
		return;
	}
	vp_dns_resolve(r->dns, u->host, dns_budget_ms(tr->timeout_ms), on_dns, tr);
}

static void part_closed(struct vp_runner *r)
{
	if (--r->closing == 0 && r->closed)
		r->closed(r->closed_arg);
}

static void on_part_closed(void *arg)
{
	part_closed(arg);
}

void vp_runner_close(struct vp_runner *r, void (*closed)(void *arg), void *arg)
{
	r->closed = closed;
	r->closed_arg = arg;
	r->stopping = true;
	/* One count for each part, and one for this call, so that parts that
	 * close at once cannot report 'closed' before both were asked. */
	r->closing = 4;
	/* The engine drops its results while closing, so no run's 'done' runs;
	 * nor does it for a run that waits for a peer agent. */
	while (r->waits != NULL) {
		struct peer_wait *w = r->waits;

		r->waits = w->next;
		vp_peer_cancel(w->q);
		free(w);
	}
	vp_engine_close(r->engine, on_part_closed);
	if (r->dns)
		vp_dns_close(r->dns, on_part_closed, r);
	else
		r->closing--;
	if (r->cm)
		vp_curlm_close(r->cm, on_part_closed, r);
	else
		r->closing--;
	r->cm = NULL;   /* closing frees the reference */
	part_closed(r);
}

struct vp_runner *vp_runner_free(struct vp_runner *r)
{
	if (!r)
		return NULL;
	vp_engine_free(r->engine);
	vp_dns_free(r->dns);
	vp_local_addrs_done(&r->local);
	vp_listen_table_done(&r->listen);
	free(r);
	return NULL;
}

/* Remote evidence for a refusal (peer.h): the peer agent's listener table
 * for one port, asked on the loop's libcurl multi and read strictly. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/curl_uv.h"
#include "agent/peer.h"
#include "probes/wire.h"
#include "vp_build.h"

#define PATH_SHOW_MAX 64   /* "ports[0].sockets[255].address" and the like */

/* ---- reading the answer (pure) ---- */

__attribute__((format(printf, 2, 3)))
static int bad(struct vp_peer_reply *rep, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(rep->why, sizeof(rep->why), fmt, ap); /* a cut phrase still says what */
	va_end(ap);
	rep->status = -EBADMSG;
	return -EBADMSG;
}

/* Copies text from the peer as printable ASCII: it ends up in details,
 * records and the page, and a hostile peer must not put control bytes,
 * escapes or broken UTF-8 there. */
static void masked(char *dst, size_t len, const char *src, size_t srclen)
{
	size_t i;

	for (i = 0; i + 1 < len && i < srclen; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	if (len > 0)
		dst[i] = '\0';
}

static int read_socket(const json_t *s, size_t i, uint16_t port, struct vp_listen_sock *k,
                       struct vp_peer_reply *rep)
{
	const json_t *addr = json_object_get(s, "address"), *fam = json_object_get(s, "family");
	const json_t *p = json_object_get(s, "port"), *v6 = json_object_get(s, "v6only");
	const json_t *pid = json_object_get(s, "pid"), *proc = json_object_get(s, "process");
	const char *f;

	if (!json_is_object(s))
		return bad(rep, "ports[0].sockets[%zu]: expected an object", i);
	if (!json_is_string(addr) || !json_is_string(fam))
		return bad(rep, "ports[0].sockets[%zu]: expected \"address\" and \"family\" strings", i);
	f = json_string_value(fam);
	k->family = strcmp(f, "ipv4") == 0 ? AF_INET : strcmp(f, "ipv6") == 0 ? AF_INET6 : 0;
	if (k->family == 0 || json_string_length(addr) >= INET6_ADDRSTRLEN ||
	    inet_pton(k->family, json_string_value(addr), &k->addr) != 1)
		return bad(rep, "ports[0].sockets[%zu].address: not an IPv4 or IPv6 address of "
		           "its family", i);
	if (!json_is_integer(p) || json_integer_value(p) != port)
		return bad(rep, "ports[0].sockets[%zu].port: expected %u", i, (unsigned)port);
	k->port = port;
	k->v6only = VP_V6ONLY_UNKNOWN;
	if (json_is_boolean(v6) && k->family == AF_INET6)
		k->v6only = json_is_true(v6) ? VP_V6ONLY_ON : VP_V6ONLY_OFF;
	else if (v6 != NULL && !json_is_null(v6) && !json_is_boolean(v6))
		return bad(rep, "ports[0].sockets[%zu].v6only: expected true, false or null", i);
	if (json_is_integer(pid) && json_integer_value(pid) > 0 && json_integer_value(pid) <= INT_MAX)
		k->pid = (int)json_integer_value(pid);
	else if (pid != NULL && !json_is_null(pid))
		return bad(rep, "ports[0].sockets[%zu].pid: expected a process id or null", i);
	if (k->pid > 0 && json_is_string(proc))
		masked(k->comm, sizeof(k->comm), json_string_value(proc), json_string_length(proc));
	else if (proc != NULL && !json_is_null(proc) && !json_is_string(proc))
		return bad(rep, "ports[0].sockets[%zu].process: expected a string or null", i);
	if (k->pid > 0 && k->comm[0] == '\0')
		snprintf(k->comm, sizeof(k->comm), "?");
	return 0;
}

/* Reads one port's entry; unknown keys are a newer peer's and are left
 * alone, the ones used here must have their type and agree. */
static int read_port(const json_t *e, uint16_t port, struct vp_peer_reply *rep)
{
	struct vp_peer_answer *a = &rep->answer;
	const json_t *p = json_object_get(e, "port"), *scope = json_object_get(e, "scope");
	const json_t *socks = json_object_get(e, "sockets");
	int i;

	if (!json_is_object(e))
		return bad(rep, "ports[0]: expected an object");
	if (!json_is_integer(p) || json_integer_value(p) != port)
		return bad(rep, "ports[0].port: expected %u, the port asked for", (unsigned)port);
	for (i = 0; i < VP_SCOPE_MAX && json_is_string(scope); i++)
		if (strcmp(json_string_value(scope), vp_listen_scope_name(i)) == 0)
			break;
	if (!json_is_string(scope) || i == VP_SCOPE_MAX)
		return bad(rep, "ports[0].scope: expected all_interfaces, loopback_only, "
		           "specific_address or not_listening");
	a->scope = (enum vp_listen_scope)i;
	if (!json_is_array(socks))
		return bad(rep, "ports[0].sockets: expected an array");
	if (json_array_size(socks) > VP_PEER_SOCKETS_MAX)
		return bad(rep, "ports[0].sockets: more than %d sockets", VP_PEER_SOCKETS_MAX);
	for (size_t k = 0; k < json_array_size(socks); k++)
		if (read_socket(json_array_get(socks, k), k, port, &a->socks[k], rep) < 0)
			return rep->status;
	a->n = json_array_size(socks);
	if ((a->scope == VP_SCOPE_NOT_LISTENING) != (a->n == 0))
		return bad(rep, "ports[0].scope: '%s' does not agree with %zu socket%s",
		           vp_listen_scope_name(a->scope), a->n, a->n == 1 ? "" : "s");
	return 0;
}

static int read_table(const char *body, size_t len, uint16_t port, struct vp_peer_reply *rep)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	const json_t *ports, *trunc;
	int r;

	if (root == NULL)
		return bad(rep, "not JSON (line %d, column %d)", jerr.line, jerr.column);
	ports = json_object_get(root, "ports");
	trunc = json_object_get(root, "truncated");
	if (!json_is_object(root))
		r = bad(rep, "expected a JSON object");
	else if (trunc != NULL && !json_is_boolean(trunc))
		r = bad(rep, "truncated: expected true or false");
	else if (!json_is_array(ports) || json_array_size(ports) != 1)
		r = bad(rep, "ports: expected an array of the one port asked for");
	else
		r = read_port(json_array_get(ports, 0), port, rep);
	rep->answer.truncated = json_is_true(trunc);
	json_decref(root);
	return r;
}

/* {"error": "..."}, as the status server sends with a 400 or 503. */
static bool peer_error(const char *body, size_t len, char *buf, size_t buflen)
{
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	const json_t *e = json_object_get(root, "error");
	bool ok = json_is_string(e);

	if (ok)
		masked(buf, buflen, json_string_value(e), json_string_length(e));
	json_decref(root);
	return ok;
}

void vp_peer_read_reply(long code, const char *body, size_t len, uint16_t port, bool had_token,
                        struct vp_peer_reply *rep)
{
	char msg[VP_PEER_WHY_MAX];

	memset(rep, 0, sizeof(*rep));
	rep->answer.port = port;
	rep->status = -EPROTO;
	if (code == 401) {
		vp_textf(rep->why, sizeof(rep->why), "HTTP 401: %s", had_token ?
		         "the token in agent_token_file is not the agent's status token" :
		         "the agent wants its status token; set agent_token_file");
		rep->status = -EACCES;
	} else if (code == 404) {
		vp_textf(rep->why, sizeof(rep->why), "HTTP 404: no /api/v1/listeners there (not a "
		         "vpcprobe agent's status server, or an older one)");
	} else if (code != 200 && peer_error(body, len, msg, sizeof(msg))) {
		vp_textf(rep->why, sizeof(rep->why), "HTTP %ld: %s", code, msg);
	} else if (code != 200) {
		vp_textf(rep->why, sizeof(rep->why), "HTTP %ld", code);
	} else if (read_table(body, len, port, rep) < 0) {
		/* bad() wrote the path; say whose answer it is. */
		snprintf(msg, sizeof(msg), "%s", rep->why);
		vp_textf(rep->why, sizeof(rep->why), "its answer is not a listener table: %s", msg);
	} else {
		rep->status = 0;
		rep->why[0] = '\0';
	}
}

/* ---- the verdict (pure) ---- */

/* "127.0.0.1", "127.0.0.1 and ::1", "a, b and c": the distinct addresses. */
static void join_addresses(const struct vp_peer_answer *a, char *buf, size_t len)
{
	size_t distinct = 0, k = 0, o = 0;
	char t[INET6_ADDRSTRLEN];
	bool seen[VP_PEER_SOCKETS_MAX] = { false };

	for (size_t i = 0; i < a->n; i++) {
		seen[i] = false;
		for (size_t j = 0; j < i && !seen[i]; j++)
			seen[i] = a->socks[j].family == a->socks[i].family &&
			          memcmp(&a->socks[j].addr, &a->socks[i].addr, sizeof(a->socks[i].addr)) == 0;
		distinct += !seen[i];
	}
	buf[0] = '\0';
	for (size_t i = 0; i < a->n && o < len; i++) {
		int w;

		if (seen[i])
			continue;
		vp_listen_addr_text(&a->socks[i], t, sizeof(t));
		k++;
		w = snprintf(buf + o, len - o, "%s%s", k == 1 ? "" : k == distinct ? " and " : ", ", t);
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

/* " (pid 4242 python3)" for the first socket whose owner is known, else "". */
static void owner_text(const struct vp_peer_answer *a, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t i = 0; i < a->n; i++) {
		if (a->socks[i].pid > 0) {
			snprintf(buf, len, " (pid %d %s)", a->socks[i].pid, a->socks[i].comm);
			return;
		}
	}
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	return sa->sa_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

void vp_peer_refine(const struct vp_peer_answer *a, const struct sockaddr *addr,
                    const char *addr_text, const char *agent_url, struct vp_verdict_out *out)
{
	char addrs[VP_DETAIL_MAX / 2], owner[VP_LISTEN_COMM_MAX + 32];
	unsigned port = a->port;
	bool covered = false;

	if (a->n == 0 && a->truncated) {
		vp_peer_unasked(addr_text, a->port, agent_url, "its listener table was cut short and "
		                "shows nothing on that port", out);
		return;
	}
	if (a->n == 0) {
		vp_textf(out->detail, sizeof(out->detail), "connection refused: %s answered the SYN to "
		         "port %u with a reset; the agent at %s confirms that nothing listens on port %u",
		         addr_text, port, agent_url, port);
		vp_textf(out->hint, sizeof(out->hint),
		         "The agent on the target's host sees no socket listening on port %u: the "
		         "service is not running, or listens on another port. Start it (`systemctl "
		         "status`, its logs) and check with `ss -ltnp 'sport = :%u'` on the target.",
		         port, port);
		return;
	}
	for (size_t i = 0; i < a->n && !covered; i++)
		covered = vp_listen_sock_covers(&a->socks[i], addr);
	join_addresses(a, addrs, sizeof(addrs));
	owner_text(a, owner, sizeof(owner));
	if (covered) {
		vp_textf(out->detail, sizeof(out->detail), "connection refused, yet per the agent at %s "
		         "port %u listens on %s%s, which takes %s", agent_url, port, addrs, owner,
		         addr_text);
		vp_textf(out->hint, sizeof(out->hint),
		         "The service listens on the address that was probed, so the reset did not come "
		         "from it: a firewall rule that rejects with tcp-reset on the target or on the "
		         "way, or another host that answers for %s. Check the target's iptables/nftables "
		         "rules and that %s is the VM the agent at %s runs on.", addr_text, addr_text,
		         agent_url);
		return;
	}
	if (vp_listen_scope_of(a->socks, a->n) == VP_SCOPE_LOOPBACK_ONLY && !is_loopback(addr)) {
		out->verdict = VP_VERDICT_LOCALHOST_ONLY;
		out->reason = VP_REASON_LOOPBACK_BIND;
		vp_textf(out->detail, sizeof(out->detail), "port %u on %s listens on %s only%s, per the "
		         "agent at %s; bind it to 0.0.0.0 or to the VM's internal address", port,
		         addr_text, addrs, owner, agent_url);
		vp_textf(out->hint, sizeof(out->hint),
		         "Cloud Run reaches the VM on its internal address (%s) through the Serverless "
		         "VPC Access connector, and a service bound to loopback refuses every connection "
		         "that does not come from the VM itself. Bind it to 0.0.0.0 (or to %s) in its "
		         "configuration (--host, bind, listen_addresses) and restart it.", addr_text,
		         addr_text);
		return;
	}
	out->verdict = VP_VERDICT_REFUSED;
	out->reason = VP_REASON_BOUND_OTHER_ADDRESS;
	vp_textf(out->detail, sizeof(out->detail), "port %u on %s listens on %s only%s, not on %s, "
	         "per the agent at %s", port, addr_text, addrs, owner, addr_text, agent_url);
	vp_textf(out->hint, sizeof(out->hint),
	         "The service is bound to another address of its host than %s, the one that was "
	         "probed and that Cloud Run's traffic through the connector arrives on: bind it to "
	         "0.0.0.0 (or to %s), or point the target at an address the service listens on.",
	         addr_text, addr_text);
}

void vp_peer_unasked(const char *addr_text, uint16_t port, const char *agent_url, const char *why,
                     struct vp_verdict_out *out)
{
	vp_textf(out->detail, sizeof(out->detail), "connection refused: %s answered the SYN to port "
	         "%u with a reset; the agent at %s could not be asked for its listeners: %s",
	         addr_text, (unsigned)port, agent_url, why);
}

/* ---- the transfer ---- */

struct vp_peer_req {
	struct vp_http_xfer x;            /* x.easy owned */
	struct vp_curlm *cm;              /* borrowed */
	struct curl_slist *headers;       /* owned; holds the token: wiped */
	uint16_t port;
	uint32_t timeout_ms;
	bool had_token, cut;
	vp_peer_cb done;
	void *arg;                        /* borrowed */
	char errbuf[CURL_ERROR_SIZE];
	size_t len;
	char body[VP_PEER_BODY_MAX];
	struct vp_peer_reply rep;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct vp_peer_req *q = userdata;
	size_t n = size * nmemb;

	if (n > sizeof(q->body) - q->len) {
		q->cut = true;
		return 0;   /* aborts the transfer: no table of one port is that long */
	}
	memcpy(q->body + q->len, ptr, n);
	q->len += n;
	return n;
}

static void free_headers(struct curl_slist *h)
{
	for (struct curl_slist *i = h; i != NULL; i = i->next)
		explicit_bzero(i->data, strlen(i->data));
	curl_slist_free_all(h);
}

static void req_free(struct vp_peer_req *q)
{
	if (q->x.easy != NULL)
		curl_easy_cleanup(q->x.easy);
	free_headers(q->headers);
	free(q);
}

/* Why a transfer failed, in the words of a probe's detail. */
static void transfer_why(const struct vp_peer_req *q, CURLcode rc, char *buf, size_t len)
{
	const char *what = q->errbuf[0] != '\0' ? q->errbuf : curl_easy_strerror(rc);
	long os_errno = 0;

	(void)curl_easy_getinfo(q->x.easy, CURLINFO_OS_ERRNO, &os_errno); /* 0 when unknown */

	if (q->cut)
		vp_textf(buf, len, "its answer is longer than %d bytes", VP_PEER_BODY_MAX);
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		vp_textf(buf, len, "no answer within %u ms", (unsigned)q->timeout_ms);
	else if (rc == CURLE_COULDNT_CONNECT && os_errno > 0)
		vp_textf(buf, len, "cannot connect: %s", strerror((int)os_errno));
	else if (rc == CURLE_COULDNT_CONNECT)
		vp_textf(buf, len, "cannot connect");
	else
		vp_textf(buf, len, "%s", what);
}

static void on_done(struct vp_http_xfer *x, CURLcode rc)
{
	struct vp_peer_req *q = x->data;
	long code = 0;

	if (rc == CURLE_OK) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
		vp_peer_read_reply(code, q->body, q->len, q->port, q->had_token, &q->rep);
	} else {
		memset(&q->rep, 0, sizeof(q->rep));
		q->rep.status = -EIO;
		transfer_why(q, rc, q->rep.why, sizeof(q->rep.why));
	}
	q->done(&q->rep, q->arg);
	req_free(q);
}

int vp_peer_ask(struct vp_curlm *cm, const char *base_url, const char *token, uint16_t port,
                uint32_t timeout_ms, vp_peer_cb done, void *arg, struct vp_peer_req **ret)
{
	struct vp_peer_req *q = calloc(1, sizeof(*q));
	char url[VP_URL_MAX + 64], auth[VP_STATUS_TOKEN_MAX + 32];
	size_t blen = strlen(base_url);
	CURL *e;
	int w;

	if (q == NULL)
		return -ENOMEM;
	while (blen > 0 && base_url[blen - 1] == '/')
		blen--;
	w = snprintf(url, sizeof(url), "%.*s/api/v1/listeners?port=%u", (int)blen, base_url,
	             (unsigned)port);
	if (w < 0 || (size_t)w >= sizeof(url)) {
		free(q);
		return -ENAMETOOLONG;
	}
	q->port = port;
	q->timeout_ms = timeout_ms;
	q->done = done;
	q->arg = arg;
	q->cm = cm;
	if (token != NULL) {
		w = snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		q->headers = w > 0 && (size_t)w < sizeof(auth) ? curl_slist_append(NULL, auth) : NULL;
		explicit_bzero(auth, sizeof(auth));
		q->had_token = true;
		if (q->headers == NULL)
			goto fail;
	}
	e = q->x.easy = curl_easy_init();
	if (e == NULL)
		goto fail;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, q->headers);
	curl_easy_setopt(e, CURLOPT_PROXY, "");  /* a VM of the VPC: never through a proxy */
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "vpcprobe/" VP_VERSION);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
	q->x.done = on_done;
	q->x.data = q;
	if (vp_curlm_add(cm, &q->x) < 0)
		goto fail;
	*ret = q;
	return 0;
fail:
	req_free(q);
	return -ENOMEM;
}

void vp_peer_cancel(struct vp_peer_req *q)
{
	if (q == NULL)
		return;
	vp_curlm_remove(q->cm, &q->x);
	req_free(q);
}

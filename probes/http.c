/* The http(s) probe's I/O (probes/http.h).
 *
 * The probe opens the socket (IP_RECVERR set) and libcurl connects it:
 * CURLOPT_OPENSOCKETFUNCTION hands curl a dup() of the probe's socket and
 * CURLOPT_CONNECT_TO points curl at the probed address, so a failed connect
 * is read back from the probe's own descriptor, ICMP error queue included,
 * and classified by the TCP probe's classifier (see vp_proto_connects() in
 * probes/tcp.h for why curl connects). The request then runs on the loop's
 * one multi handle (agent/curl_uv.h); the TCP probe's deadline timer bounds
 * all of it, and its close removes the transfer.
 *
 * For https the URL carries the name to verify, which also goes out as SNI:
 * the URL's host, or host_header's when set. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/curl_uv.h"
#include "agent/limits.h"
#include "probes/http.h"
#include "probes/proto.h"
#include "probes/tls.h"
#include "vp_build.h"

#define NS_PER_US 1000ULL
#define TEXT_LINE_MAX 512        /* the URL, the Host header or the CONNECT_TO entry */

struct hp {
	struct vp_tcp_probe *p;          /* borrowed: the probe this serves */
	struct vp_curlm *cm;             /* owned reference to the loop's multi */
	struct vp_http_xfer x;           /* x.easy owned */
	struct curl_slist *headers;      /* owned */
	struct curl_slist *connect_to;   /* owned */
	bool in_multi;
	bool socket_given;               /* the probe's socket went to curl (once only) */
	int dup_errno;                   /* dup() of it failed with this */
	bool not_http;                   /* body bytes came without a status line */
	uint64_t start_ns;               /* uv_hrtime() when the transfer was added */
	uint64_t tls_start_ns;           /* when curl set TLS up: the TCP handshake was done */
	uint8_t head[VP_PREVIEW_BYTES];  /* the body's first bytes */
	size_t head_len;
	size_t body_total;
	size_t header_bytes;
	bool body_cut;
	char server[VP_HTTP_SERVER_MAX]; /* the Server header */
	char via[VP_HTTP_SERVER_MAX];    /* the Via header */
	uint64_t tls_end_ns;             /* the handshake finished (0: it did not) */
	struct vp_tls_info tls;          /* version, cipher, whether the server spoke TLS */
	bool cert_seen;                  /* the verify callback saw the leaf */
	long cert_days;
	long verify_err;                 /* the first error the verify callback saw */
	char host[VP_HOST_MAX];          /* the URL's host: Host, SNI and verification */
	char errbuf[CURL_ERROR_SIZE];
};

/* ---- callbacks from curl ---- */

static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct hp *h = clientp;
	uv_os_fd_t fd;
	int copy;

	(void)a;
	/* One connect per probe: a second call would be curl trying again,
	 * which is not the probe's to do. */
	if (purpose != CURLSOCKTYPE_IPCXN || h->socket_given)
		return CURL_SOCKET_BAD;
	h->socket_given = true;
	if (uv_fileno((uv_handle_t *)&h->p->tcp, &fd) < 0) {
		h->dup_errno = EBADF;
		return CURL_SOCKET_BAD;
	}
	copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (copy < 0) {
		h->dup_errno = errno;
		return CURL_SOCKET_BAD;
	}
	return copy;
}

/* The body is counted and its first bytes kept for the detail; past
 * VP_REPLY_MAX the transfer is cut (curl then reports CURLE_WRITE_ERROR,
 * which on_done() knows for the bound). */
static size_t on_body(char *buf, size_t size, size_t n, void *userdata)
{
	struct hp *h = userdata;
	size_t len = size * n;
	long status = 0;

	if (h->head_len < sizeof(h->head)) {
		size_t take = sizeof(h->head) - h->head_len;

		take = take < len ? take : len;
		memcpy(h->head + h->head_len, buf, take);
		h->head_len += take;
	}
	h->body_total += len;
	h->p->rtotal += len;
	/* HTTP/0.9 is allowed so that bytes that are not HTTP arrive here to be
	 * shown; one look at them is enough. */
	curl_easy_getinfo(h->x.easy, CURLINFO_RESPONSE_CODE, &status);
	if (status == 0) {
		h->not_http = true;
		return 0;
	}
	if (h->body_total > VP_REPLY_MAX) {
		h->body_cut = true;
		return 0;
	}
	return len;
}

/* The value of header line 'buf' into 'out' (bounded), if it is 'name'. */
static void keep_header(const char *buf, size_t len, const char *name, char *out, size_t outlen)
{
	size_t skip = strlen(name);
	size_t end = len;

	if (len <= skip || strncasecmp(buf, name, skip) != 0)
		return;
	while (skip < end && (buf[skip] == ' ' || buf[skip] == '\t'))
		skip++;
	while (end > skip && (buf[end - 1] == '\r' || buf[end - 1] == '\n' || buf[end - 1] == ' '))
		end--;
	if (end - skip >= outlen)
		end = skip + outlen - 1;
	memcpy(out, buf + skip, end - skip);
	out[end - skip] = '\0';
}

/* Keeps Server and Via for the detail: they tell a load balancer's answer
 * from the application's. */
static size_t on_header(char *buf, size_t size, size_t n, void *userdata)
{
	struct hp *h = userdata;
	size_t len = size * n;

	h->header_bytes += len;
	h->p->rtotal += len;
	keep_header(buf, len, "server:", h->server, sizeof(h->server));
	keep_header(buf, len, "via:", h->via, sizeof(h->via));
	return len;
}

static int hp_index(void)
{
	static int idx = -1;

	if (idx < 0)
		idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	return idx;
}

/* OpenSSL's verify callback, installed next to curl's own settings: it
 * changes no outcome, it only notes the leaf's expiry (also when the chain
 * fails, so that an expired certificate says since when) and the first
 * error. */
static int on_verify(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct hp *h = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), hp_index()) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(x);
	int days, secs;

	if (h == NULL)
		return ok;
	if (!h->cert_seen && leaf != NULL &&
	    ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(leaf)) == 1) {
		h->cert_seen = true;
		/* Whole days, cut toward zero; a certificate that expired less
		 * than a day ago has -1, so that it reads as expired. */
		h->cert_days = days == 0 && secs < 0 ? -1 : days;
	}
	if (!ok && h->verify_err == X509_V_OK)
		h->verify_err = X509_STORE_CTX_get_error(x);
	return ok;
}

/* OpenSSL's info callback: whether the server spoke TLS at all, and the
 * version and cipher once the handshake is done, for the record's "tls"
 * object as probes/tls.c fills it for postgres and rediss. */
static void on_info(const SSL *ssl, int where, int ret)
{
	struct hp *h = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), hp_index());
	const SSL_CIPHER *c;

	(void)ret;
	if (h == NULL)
		return;
	/* A ServerHello read, or an alert from the server: it speaks TLS. */
	if ((where & SSL_CB_READ_ALERT) ||
	    ((where & SSL_CB_LOOP) && SSL_get_state(ssl) == TLS_ST_CR_SRVR_HELLO))
		h->tls.offered = true;
	/* TLS 1.3 tickets after the handshake report "done" again: the
	 * first is the handshake's end. */
	if (!(where & SSL_CB_HANDSHAKE_DONE) || h->tls_end_ns != 0)
		return;
	h->tls_end_ns = uv_hrtime();
	h->tls.offered = true;
	snprintf(h->tls.version, sizeof(h->tls.version), "%s", SSL_get_version(ssl));
	c = SSL_get_current_cipher(ssl);
	if (c != NULL)
		snprintf(h->tls.cipher, sizeof(h->tls.cipher), "%s", SSL_CIPHER_get_name(c));
}

static CURLcode on_ssl_ctx(CURL *easy, void *sslctx, void *parm)
{
	SSL_CTX *ctx = sslctx;

	(void)easy;
	((struct hp *)parm)->tls_start_ns = uv_hrtime();
	/* The bound probes/tls.c puts on the chain: a hostile server's
	 * certificates cost at most this much memory. */
	SSL_CTX_set_max_cert_list(ctx, VP_TLS_HANDSHAKE_MAX);
	if (hp_index() < 0 || SSL_CTX_set_ex_data(ctx, hp_index(), parm) != 1)
		return CURLE_OK; /* no expiry in the record; the probe goes on */
	SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), on_verify);
	SSL_CTX_set_info_callback(ctx, on_info);
	return CURLE_OK;
}

/* ---- the outcome ---- */

/* curl's clock starts when the transfer is added: the handshake's time on
 * the probe's clock, for timings_ms.connect. curl 7.88 leaves
 * CURLINFO_CONNECT_TIME_T at 0 when the TLS handshake fails; the TCP
 * handshake was done by the time curl set TLS up, though. */
static void note_connect_time(struct hp *h)
{
	curl_off_t us = 0;
	uint64_t at = h->tls_start_ns;

	if (curl_easy_getinfo(h->x.easy, CURLINFO_CONNECT_TIME_T, &us) == CURLE_OK && us > 0)
		at = h->start_ns + (uint64_t)us * NS_PER_US;
	if (at == 0)
		return;
	if (!h->p->decided || at <= h->p->end_ns)
		h->p->connected_ns = at;
}

/* The TLS handshake into the probe's result (probes/tls.h), as postgres
 * and rediss have it: timings_ms.tls is curl's CONNECT to APPCONNECT when
 * the handshake finished; when it did not, it runs from the moment curl set
 * TLS up to the failure (or, after the deadline, to the probe's end). */
static void note_tls(struct hp *h, uint64_t failed_ns)
{
	curl_off_t conn_us = 0, app_us = 0;
	uint64_t start = h->tls_start_ns, end = failed_ns;

	if (h->p->obs.kind != VP_KIND_HTTPS || start == 0)
		return;
	if (curl_easy_getinfo(h->x.easy, CURLINFO_CONNECT_TIME_T, &conn_us) == CURLE_OK &&
	    curl_easy_getinfo(h->x.easy, CURLINFO_APPCONNECT_TIME_T, &app_us) == CURLE_OK &&
	    app_us >= conn_us && app_us > 0 && conn_us > 0) {
		start = h->start_ns + (uint64_t)conn_us * NS_PER_US;
		end = h->start_ns + (uint64_t)app_us * NS_PER_US;
	} else if (h->tls_end_ns != 0) {
		end = h->tls_end_ns;
	}
	if (h->cert_seen)
		h->tls.offered = true;
	/* Without memory the record lacks its "tls" object; the verdict
	 * stands. */
	(void)vp_tls_note(h->p, &h->tls, start, end,
	                  h->cert_seen ? (int)h->cert_days : VP_CERT_DAYS_UNKNOWN);
}

static void decide_answer(struct hp *h)
{
	struct vp_tcp_probe *p = h->p;
	const struct vp_target *t = p->target;
	struct vp_http_answer a = {
		.kind = p->obs.kind, .expect = t ? &t->expect_status : NULL,
		.path = t && t->url.path ? t->url.path : "/", .server = h->server, .via = h->via,
		.body = h->head, .body_len = h->head_len, .body_total = h->body_total, .body_cut = h->body_cut,
		.tls_ms = -1.0, .cert_days_known = h->cert_seen, .cert_days = h->cert_days,
	};
	struct vp_verdict_out v;
	curl_off_t conn_us = 0, app_us = 0;

	if (!h->not_http)
		curl_easy_getinfo(h->x.easy, CURLINFO_RESPONSE_CODE, &a.status);
	if (p->obs.kind == VP_KIND_HTTPS &&
	    curl_easy_getinfo(h->x.easy, CURLINFO_CONNECT_TIME_T, &conn_us) == CURLE_OK &&
	    curl_easy_getinfo(h->x.easy, CURLINFO_APPCONNECT_TIME_T, &app_us) == CURLE_OK &&
	    app_us >= conn_us && app_us > 0)
		a.tls_ms = (double)(app_us - conn_us) / 1000.0;
	vp_http_decide_status(&a, &v);
	vp_tcp_decide(p, &v);
}

static void decide_failure(struct hp *h, CURLcode rc)
{
	struct vp_tcp_probe *p = h->p;
	struct vp_http_failure f = {
		.kind = p->obs.kind, .rc = rc, .errtext = h->errbuf, .host = h->host,
		.port = p->obs.port, .bytes_read = h->header_bytes + h->body_total,
		.cert_days_known = h->cert_seen, .cert_days = h->cert_days,
	};
	struct vp_verdict_out v;

	curl_easy_getinfo(h->x.easy, CURLINFO_OS_ERRNO, &f.os_errno);
	/* OpenSSL's own word, seen by on_verify(), is the more precise one.
	 * curl's starts as 1 (!X509_V_OK) and means something only once it
	 * verified: after a handshake that failed earlier it is not evidence. */
	if (h->verify_err != X509_V_OK)
		f.verify_result = h->verify_err;
	else if (rc == CURLE_PEER_FAILED_VERIFICATION)
		curl_easy_getinfo(h->x.easy, CURLINFO_SSL_VERIFYRESULT, &f.verify_result);
	vp_http_decide_failure(&f, &v);
	vp_tcp_decide(p, &v);
}

static void on_done(struct vp_http_xfer *x, CURLcode rc)
{
	struct hp *h = x->data;
	struct vp_tcp_probe *p = h->p;
	long err = 0;

	h->in_multi = false;
	if (p->decided)
		return; /* the deadline came first */
	note_connect_time(h);
	note_tls(h, uv_hrtime());
	if (rc == CURLE_COULDNT_CONNECT && h->dup_errno != 0) {
		vp_tcp_connect_failed(p, h->dup_errno, "dup");
	} else if (rc == CURLE_COULDNT_CONNECT) {
		curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &err);
		/* ECONNABORTED: curl gave no errno, which the classifier calls the
		 * agent's own trouble rather than guess. */
		vp_tcp_connect_failed(p, err > 0 ? (int)err : ECONNABORTED, NULL);
	} else if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && (h->body_cut || h->not_http))) {
		decide_answer(h);
	} else {
		decide_failure(h, rc);
	}
}

/* ---- setting the transfer up ---- */

/* "[fd00::2]" for an IPv6 address, the text itself otherwise. */
static const char *bracket(const char *host, char *buf, size_t len)
{
	if (strchr(host, ':') == NULL)
		return host;
	snprintf(buf, len, "[%s]", host);
	return buf;
}

/* The name in the URL: host_header's host part for https (it is the name
 * the certificate must carry), else the target's host. */
static void url_host(struct hp *h, const struct vp_target *t)
{
	const char *src = t ? t->url.host : h->p->obs.address;
	size_t len;

	if (t != NULL && t->host_header != NULL && h->p->obs.kind == VP_KIND_HTTPS) {
		src = t->host_header;
		if (src[0] == '[') {
			src++;
			len = strcspn(src, "]");
		} else {
			len = strcspn(src, ":");
		}
		snprintf(h->host, sizeof(h->host), "%.*s", (int)len, src);
		return;
	}
	snprintf(h->host, sizeof(h->host), "%s", src);
}

static int set_lists(struct hp *h, const struct vp_target *t)
{
	char line[TEXT_LINE_MAX], b[VP_HOST_MAX + 2];

	/* Any host and port of the URL goes to the probed address: per easy
	 * handle, so nothing leaks into the multi's DNS cache. */
	snprintf(line, sizeof(line), "::%s:%u", bracket(h->p->obs.address, b, sizeof(b)),
	         h->p->obs.port);
	h->connect_to = curl_slist_append(NULL, line);
	if (h->connect_to == NULL)
		return -ENOMEM;
	if (t == NULL || t->host_header == NULL)
		return 0;
	snprintf(line, sizeof(line), "Host: %s", t->host_header);
	h->headers = curl_slist_append(NULL, line);
	return h->headers ? 0 : -ENOMEM;
}

static int set_options(struct hp *h, CURL *e)
{
	const struct vp_target *t = h->p->target;
	char url[VP_HOST_MAX + VP_PATH_MAX + 32], b[VP_HOST_MAX + 2];
	bool tls = h->p->obs.kind == VP_KIND_HTTPS;
	int r;

	url_host(h, t);
	snprintf(url, sizeof(url), "%s://%s:%u%s", tls ? "https" : "http",
	         bracket(h->host, b, sizeof(b)), h->p->obs.port, t && t->url.path ? t->url.path : "/");
	r = set_lists(h, t);
	if (r < 0)
		return r;
	if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK)
		return -ENOMEM;
	curl_easy_setopt(e, CURLOPT_CONNECT_TO, h->connect_to);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "vpcprobe/" VP_VERSION);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, tls ? "https" : "http");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* A probe is one fresh connection: no proxy from the environment, no
	 * reused connection or TLS session, no redirect followed. */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_HTTP09_ALLOWED, 1L);
	if (tls) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
		/* TLS 1.2 and 1.3, as probes/tls.c speaks them for postgres and
		 * rediss: the same server gets the same verdict from every kind. */
		curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
		curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, (long)VP_HTTP_CA_CACHE_S);
		if (t != NULL && t->ca_file != NULL)
			curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
		/* Not with every TLS backend; without it the record lacks the
		 * certificate's expiry, and nothing else changes. */
		if (curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx) == CURLE_OK)
			curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, h);
	}
	return 0;
}

static int http_start(struct vp_tcp_probe *p)
{
	struct hp *h = calloc(1, sizeof(*h));
	int r;

	if (h == NULL)
		return -ENOMEM;
	p->proto_state = h;
	h->p = p;
	h->cm = vp_curlm_new(p->timer.loop);
	h->x.easy = h->cm ? curl_easy_init() : NULL;
	if (h->x.easy == NULL)
		return -ENOMEM;
	h->x.done = on_done;
	h->x.data = h;
	r = set_options(h, h->x.easy);
	if (r < 0)
		return r;
	h->start_ns = uv_hrtime();
	r = vp_curlm_add(h->cm, &h->x);
	h->in_multi = r == 0;
	return r;
}

/* From the probe's last close callback, before its verdict is read: out of
 * the multi (which closes curl's copy of the socket), and the handshake's
 * time for a probe that the deadline ended. */
static void http_done(struct vp_tcp_probe *p)
{
	struct hp *h = p->proto_state;

	if (h == NULL)
		return;
	if (h->x.easy != NULL) {
		if (h->in_multi)
			vp_curlm_remove(h->cm, &h->x);
		note_connect_time(h);
		/* Ended by the deadline: the handshake ran until the probe's
		 * end, unless it finished. */
		if (p->tls == NULL)
			note_tls(h, 0);
		curl_easy_cleanup(h->x.easy);
	}
	curl_slist_free_all(h->headers);
	curl_slist_free_all(h->connect_to);
	if (h->cm != NULL)
		vp_curlm_close(h->cm, NULL, NULL);
	free(h);
	p->proto_state = NULL;
}

const struct vp_proto vp_proto_http = { "http", http_start, NULL, http_done };
const struct vp_proto vp_proto_https = { "https", http_start, NULL, http_done };

/* TLS over the probe's libuv stream (issue 4).
 *
 * OpenSSL never sees the socket: it reads the server's bytes from one memory
 * BIO (rbio) and writes its own into another (wbio). probes/tcp.c feeds the
 * first from its read callback and this module drains the second through
 * vp_tcp_send_raw(), so the probe keeps its one socket, one deadline and one
 * read bound, and the protocol modules see plaintext in p->rbuf as before.
 *
 * An SSL_CTX is costly to make (the CA file is parsed), so there is one per
 * ca_file, made on first use and kept: the verify mode and the host name are
 * set per connection. The cache lives on the one loop's thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "probes/proto.h"
#include "probes/tcp.h"
#include "probes/tls.h"
#include "probes/wire.h"

struct vp_tls {
	SSL *ssl;                  /* owned, NULL until vp_tls_start(); owns both BIOs */
	BIO *rbio;                 /* borrowed from 'ssl': the server's bytes */
	BIO *wbio;                 /* borrowed from 'ssl': bytes for the server */
	void (*ready)(struct vp_tcp_probe *p);
	const char *host;          /* borrowed from vp_tls_opts: valid while the probe runs */
	const char *ca_file;       /* borrowed likewise; NULL: the system's CAs */
	enum vp_tls_verify verify;
	bool done;                 /* the handshake finished */
	size_t bytes;              /* handshake bytes read from the server */
	int cert_days_left;
	uint64_t start_ns;         /* uv_hrtime() before the ClientHello; 0: none */
	uint64_t end_ns;           /* the handshake finished or failed; 0: not yet */
	struct vp_tls_info info;
};

/* ---- one SSL_CTX per ca_file ---- */

struct ctx_entry {
	SSL_CTX *ctx;              /* owned reference; NULL: the slot is free */
	char *ca_file;             /* owned; NULL: the system's CAs */
	struct stat st;            /* of ca_file when it was loaded: a change reloads it */
	uint64_t checked_ms;       /* loop time of the last stat() */
	uint64_t used_ms;          /* loop time of the last use: the oldest is evicted */
};

static struct ctx_entry cache[VP_TLS_CTX_MAX];

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void entry_clear(struct ctx_entry *e)
{
	SSL_CTX_free(e->ctx);  /* connections hold their own references */
	free(e->ca_file);
	memset(e, 0, sizeof(*e));
}

void vp_tls_cache_clear(void)
{
	for (size_t i = 0; i < VP_TLS_CTX_MAX; i++)
		entry_clear(&cache[i]);
}

/* The first OpenSSL error as text, or 'fallback'. Clears the queue. */
static void openssl_why(char *why, size_t len, const char *fallback)
{
	unsigned long e = ERR_peek_error();
	const char *s = e ? ERR_reason_error_string(e) : NULL;

	vp_textf(why, len, "%s", s ? s : fallback);
	ERR_clear_error();
}

static SSL_CTX *ctx_new(const char *ca_file, char *why, size_t len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int ok;

	if (ctx == NULL) {
		openssl_why(why, len, "SSL_CTX_new failed");
		return NULL;
	}
	/* Cloud SQL and Memorystore speak TLS 1.2 and 1.3; older versions are
	 * refused whatever this host's openssl.cnf says. */
	ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* OpenSSL's own bound on the chain, next to ours on the handshake. */
	SSL_CTX_set_max_cert_list(ctx, VP_TLS_HANDSHAKE_MAX);
	/* Every probe is a new connection: nothing is resumed. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (ok)
		ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) :
		     SSL_CTX_set_default_verify_paths(ctx);
	if (!ok) {
		openssl_why(why, len, "no certificate in it");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static struct ctx_entry *ctx_find(const char *ca_file)
{
	for (size_t i = 0; i < VP_TLS_CTX_MAX; i++) {
		const struct ctx_entry *e = &cache[i];

		if (e->ctx && (e->ca_file == ca_file ||
		               (e->ca_file && ca_file && strcmp(e->ca_file, ca_file) == 0)))
			return &cache[i];
	}
	return NULL;
}

/* A free slot, or the least recently used one, emptied. */
static struct ctx_entry *ctx_slot(void)
{
	struct ctx_entry *oldest = &cache[0];

	for (size_t i = 0; i < VP_TLS_CTX_MAX; i++) {
		if (cache[i].ctx == NULL)
			return &cache[i];
		if (cache[i].used_ms < oldest->used_ms)
			oldest = &cache[i];
	}
	entry_clear(oldest);
	return oldest;
}

/* The SSL_CTX for 'ca_file' (borrowed: SSL_new() takes its own reference),
 * loaded again when the file changed since (a rotated CA). NULL with a
 * sentence in 'why' when the file cannot be used. */
static SSL_CTX *ctx_get(uint64_t now_ms, const char *ca_file, int *err, char *why, size_t len)
{
	struct ctx_entry *e = ctx_find(ca_file);
	struct stat st = { 0 };
	SSL_CTX *ctx;
	char *name = NULL;

	if (e && (ca_file == NULL || now_ms - e->checked_ms < VP_TLS_CA_RECHECK_MS))
		goto out;
	if (ca_file && stat(ca_file, &st) < 0) {
		*err = -errno;
		vp_textf(why, len, "%s", strerror(errno));
		return NULL;
	}
	if (e && same_file(&e->st, &st)) {
		e->checked_ms = now_ms;
		goto out;
	}
	*err = -ENOMEM;
	if (ca_file && (name = strdup(ca_file)) == NULL) {
		vp_textf(why, len, "out of memory");
		return NULL;
	}
	ctx = ctx_new(ca_file, why, len);
	if (ctx == NULL) {
		*err = -EINVAL;
		free(name);
		return NULL;
	}
	if (e)
		entry_clear(e);
	else
		e = ctx_slot();
	e->ctx = ctx;
	e->ca_file = name;
	e->st = st;
	e->checked_ms = now_ms;
out:
	e->used_ms = now_ms;
	return e->ctx;
}

/* ---- one connection ---- */

/* The agent's own failure: no memory, an unusable ca_file. */
static void decide_local(struct vp_tcp_probe *p, int r, const char *what)
{
	struct vp_verdict_out v = { .verdict = VP_VERDICT_LOCAL_ERROR, .err = -r,
	                            .reason = r == -ENOMEM ? VP_REASON_NO_BUFFERS :
	                                      VP_REASON_LOCAL_OTHER };

	vp_textf(v.detail, sizeof(v.detail), "TLS: %s", what);
	if (r == -ENOMEM)
		vp_textf(v.hint, sizeof(v.hint), "The agent itself failed, not the target: check the "
		         "agent host's memory and limits, and its log.");
	else
		vp_textf(v.hint, sizeof(v.hint), "The agent itself failed, not the target: ca_file "
		         "must be a readable PEM file of CA certificates (Cloud SQL's server CA, "
		         "Memorystore's CA) for the user that runs vpcprobe.");
	vp_tcp_decide(p, &v);
}

/* Whole days until the server's certificate expires (29 with 29.9 left),
 * negative once it has: -1 for up to two days ago, -2 up to three, and so
 * on, so that an expired certificate never reads 0. Before a failed
 * verification OpenSSL keeps the chain only, so the leaf is taken from
 * there. */
static int days_left(const SSL *ssl)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	const X509 *leaf = chain && sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) :
	                   SSL_get0_peer_certificate(ssl);
	int day;
	int sec;

	if (leaf == NULL || !ASN1_TIME_diff(&day, &sec, NULL, X509_get0_notAfter(leaf)))
		return VP_CERT_DAYS_UNKNOWN;
	if (day < 0 || sec < 0)   /* ASN1_TIME_diff() gives both the same sign */
		return day < 0 ? day : -1;
	return day;
}

static void observe(const struct vp_tcp_probe *p, enum vp_tls_event ev, struct vp_tls_obs *o)
{
	const struct vp_tls *t = p->tls;

	memset(o, 0, sizeof(*o));
	o->event = ev;
	o->kind = p->obs.kind;
	o->verify = t->verify;
	o->verify_result = t->ssl ? SSL_get_verify_result(t->ssl) : X509_V_OK;
	o->err = ERR_peek_error();
	o->host = t->host;
	o->ca_file = t->ca_file;
	o->cert_days_left = t->ssl ? days_left(t->ssl) : VP_CERT_DAYS_UNKNOWN;
	o->bytes = t->bytes;
	o->timeout_ms = p->obs.timeout_ms;
}

/* The handshake, or the session after it, failed as 'ev' says. */
static void fail(struct vp_tcp_probe *p, enum vp_tls_event ev, const uint8_t *first, size_t len)
{
	struct vp_tls *t = p->tls;
	struct vp_verdict_out v;
	struct vp_tls_obs o;

	observe(p, ev, &o);
	o.first = first;
	o.first_len = len;
	t->cert_days_left = o.cert_days_left;
	if (!t->done)
		t->end_ns = uv_hrtime();
	vp_tls_classify(&o, &v);
	ERR_clear_error();
	vp_tcp_decide(p, &v);
}

/* Sends what OpenSSL wrote: the ClientHello, Finished, records, alerts. */
static int flush(struct vp_tcp_probe *p)
{
	uint8_t chunk[VP_TLS_RECORD_MAX];
	int n;
	int r;

	while ((n = BIO_read(p->tls->wbio, chunk, sizeof(chunk))) > 0) {
		r = vp_tcp_send_raw(p, chunk, (size_t)n);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The server ended the session with close_notify before the protocol
 * decided: as a close after the TCP handshake, one layer up. */
static void decide_closed(struct vp_tcp_probe *p)
{
	struct vp_verdict_out v = { .verdict = VP_VERDICT_RESET,
	                            .reason = VP_REASON_CLOSED_BEFORE_REPLY };

	vp_textf(v.detail, sizeof(v.detail), "the server ended the TLS session (close_notify) after "
	         "the handshake, %zu bytes of plaintext read", p->rtotal);
	vp_textf(v.hint, sizeof(v.hint), "The %s service accepted TLS and then hung up before "
	         "answering: check its log on the target (a client limit, or a client "
	         "certificate it wanted).", p->proto->name);
	ERR_clear_error();
	vp_tcp_decide(p, &v);
}

/* Hands the plaintext that OpenSSL has to the protocol, record by record. */
static void read_plain(struct vp_tcp_probe *p)
{
	uint8_t buf[VP_REPLY_CHUNK];
	int n;
	int e;
	int r;

	while (!p->decided) {
		ERR_clear_error();
		n = SSL_read(p->tls->ssl, buf, sizeof(buf));
		if (n > 0) {
			vp_tcp_deliver(p, buf, (size_t)n);
			continue;
		}
		e = SSL_get_error(p->tls->ssl, n);
		/* Reading may have answered something (a TLS 1.3 KeyUpdate). */
		r = flush(p);
		if (r < 0)
			decide_local(p, r, "sending a TLS record failed");
		else if (e == SSL_ERROR_ZERO_RETURN)
			decide_closed(p);
		else if (e != SSL_ERROR_WANT_READ)
			/* An alert after the handshake: a TLS 1.3 server refuses a
			 * missing client certificate here. */
			fail(p, VP_TLS_EV_FAILED, NULL, 0);
		return;
	}
}

static void finished(struct vp_tcp_probe *p)
{
	struct vp_tls *t = p->tls;
	void (*ready)(struct vp_tcp_probe *p) = t->ready;

	t->done = true;
	t->end_ns = uv_hrtime();
	t->info.offered = true;
	vp_textf(t->info.version, sizeof(t->info.version), "%s", SSL_get_version(t->ssl));
	vp_textf(t->info.cipher, sizeof(t->info.cipher), "%s",
	         SSL_CIPHER_get_name(SSL_get_current_cipher(t->ssl)));
	t->cert_days_left = days_left(t->ssl);
	t->ready = NULL;
	ready(p);
	if (!p->decided)
		read_plain(p);   /* the server may have sent more with its Finished */
}

static void handshake(struct vp_tcp_probe *p)
{
	struct vp_tls *t = p->tls;
	int r;
	int e;

	ERR_clear_error();
	r = SSL_do_handshake(t->ssl);
	e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
	/* What the handshake wrote goes out, an alert that tells the server
	 * why we gave up included: its log then names the cause too. */
	r = flush(p);
	if (r < 0)
		decide_local(p, r, "sending the TLS handshake failed");
	else if (e == SSL_ERROR_NONE)
		finished(p);
	else if (e != SSL_ERROR_WANT_READ)
		fail(p, VP_TLS_EV_FAILED, NULL, 0);
}

void vp_tls_on_read(struct vp_tcp_probe *p, size_t n)
{
	struct vp_tls *t = p->tls;
	const uint8_t *in = p->rbuf + p->rlen;

	if (!t->done) {
		if (t->bytes == 0 && !vp_tls_looks_like_tls(in, n)) {
			fail(p, VP_TLS_EV_NOT_TLS, in, n);
			return;
		}
		t->info.offered = true;
		t->bytes += n;
		if (t->bytes > VP_TLS_HANDSHAKE_MAX) {
			fail(p, VP_TLS_EV_TOO_LARGE, NULL, 0);
			return;
		}
	}
	/* A memory BIO takes all of it, or fails for want of memory. */
	if (BIO_write(t->rbio, in, (int)n) != (int)n) {
		ERR_clear_error();
		decide_local(p, -ENOMEM, "no memory for the bytes read");
		return;
	}
	if (t->done)
		read_plain(p);
	else
		handshake(p);
}

int vp_tls_send(struct vp_tcp_probe *p, const void *buf, size_t len)
{
	struct vp_tls *t = p->tls;

	if (!t->done)
		return -ENOTCONN;
	if (len > VP_SEND_MAX)
		return -EMSGSIZE;
	if (len == 0)
		return 0;
	ERR_clear_error();
	/* A memory BIO takes the whole write: no partial writes to resume. */
	if (SSL_write(t->ssl, buf, (int)len) <= 0) {
		ERR_clear_error();
		return -EIO;
	}
	return flush(p);
}

int vp_tls_ask(struct vp_tcp_probe *p)
{
	if (p->tls == NULL) {
		p->tls = calloc(1, sizeof(*p->tls));
		if (p->tls == NULL)
			return -ENOMEM;
		p->tls->cert_days_left = VP_CERT_DAYS_UNKNOWN;
	}
	p->tls->info.asked = true;
	return 0;
}

static bool is_ip(const char *host)
{
	uint8_t addr[16];

	return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

/* The SSL object, its BIOs, SNI and what is verified. */
static int setup(struct vp_tcp_probe *p, struct vp_tls *t, char *why, size_t len)
{
	int r = 0;
	SSL_CTX *ctx = ctx_get(uv_now(p->tcp.loop), t->ca_file, &r, why, len);
	BIO *rbio;
	BIO *wbio;

	if (ctx == NULL)
		return r;
	r = 0;
	t->ssl = SSL_new(ctx);
	rbio = BIO_new(BIO_s_mem());
	wbio = BIO_new(BIO_s_mem());
	if (t->ssl == NULL || rbio == NULL || wbio == NULL) {
		BIO_free(rbio);
		BIO_free(wbio);
		vp_textf(why, len, "out of memory");
		return -ENOMEM;
	}
	SSL_set_bio(t->ssl, rbio, wbio);   /* 'ssl' owns both from here */
	t->rbio = rbio;
	t->wbio = wbio;
	SSL_set_connect_state(t->ssl);
	/* RFC 6066 section 3: SNI carries host names, never addresses. */
	if (t->host && !is_ip(t->host) && !SSL_set_tlsext_host_name(t->ssl, t->host))
		r = -EINVAL;
	if (t->verify != VP_VERIFY_NONE)
		SSL_set_verify(t->ssl, SSL_VERIFY_PEER, NULL);
	/* SSL_set1_host() checks an IP address as one (OpenSSL 3.0). */
	if (r == 0 && t->verify == VP_VERIFY_HOST && (!t->host || !SSL_set1_host(t->ssl, t->host)))
		r = -EINVAL;
	if (r < 0)
		openssl_why(why, len, "the host name is not usable for TLS");
	return r;
}

void vp_tls_start(struct vp_tcp_probe *p, const struct vp_tls_opts *o,
                  void (*ready)(struct vp_tcp_probe *p))
{
	char why[VP_DETAIL_MAX - 64];
	char what[VP_DETAIL_MAX];
	struct vp_tls *t;
	int r = vp_tls_ask(p);

	if (r < 0) {
		decide_local(p, r, "no memory for TLS");
		return;
	}
	t = p->tls;
	t->info.offered = o->offered;
	/* Without a name, the certificate must name the address probed. */
	t->host = o->host && o->host[0] ? o->host : p->obs.address;
	t->ca_file = o->ca_file;
	t->verify = o->verify;
	t->ready = ready;
	r = setup(p, t, why, sizeof(why));
	if (r < 0) {
		if (o->ca_file)
			vp_textf(what, sizeof(what), "cannot use ca_file '%s': %s", o->ca_file, why);
		else
			vp_textf(what, sizeof(what), "cannot set up a connection: %s", why);
		decide_local(p, r, what);
		return;
	}
	t->start_ns = uv_hrtime();
	handshake(p);
}

int vp_tls_note(struct vp_tcp_probe *p, const struct vp_tls_info *info, uint64_t start_ns,
                uint64_t end_ns, int cert_days_left)
{
	int r = vp_tls_ask(p);

	if (r < 0)
		return r;
	/* No SSL of its own: vp_tls_active() stays false, and probes/tcp.c
	 * leaves the bytes to the library that spoke TLS. */
	p->tls->info = *info;
	p->tls->info.asked = true;
	p->tls->start_ns = start_ns;
	p->tls->end_ns = start_ns ? end_ns : 0;
	p->tls->cert_days_left = cert_days_left;
	return 0;
}

bool vp_tls_active(const struct vp_tls *t)
{
	return t != NULL && t->ssl != NULL;
}

bool vp_tls_phase_end(const struct vp_tcp_probe *p, struct vp_verdict_out *v)
{
	const struct vp_tls *t = p->tls;
	enum vp_tls_event ev;
	struct vp_tls_obs o;
	int err = v->err;

	if (!vp_tls_active(t) || t->done)
		return false;
	if (v->verdict == VP_VERDICT_TIMEOUT)
		ev = VP_TLS_EV_TIMEOUT;
	else if (v->reason == VP_REASON_RESET_BEFORE_REPLY)
		ev = VP_TLS_EV_RESET;
	else if (v->reason == VP_REASON_CLOSED_BEFORE_REPLY)
		ev = VP_TLS_EV_CLOSED;
	else
		return false;
	observe(p, ev, &o);
	o.sys_err = err;
	vp_tls_classify(&o, v);
	return true;
}

void vp_tls_report(const struct vp_tls *t, uint64_t end_ns, struct vp_tls_info *info,
                   double *ms, int *days)
{
	uint64_t end;

	memset(info, 0, sizeof(*info));
	*ms = -1.0;
	*days = VP_CERT_DAYS_UNKNOWN;
	if (t == NULL)
		return;
	*info = t->info;
	*days = t->cert_days_left;
	if (t->start_ns == 0)
		return;
	end = t->end_ns ? t->end_ns : end_ns;
	*ms = end > t->start_ns ? (double)(end - t->start_ns) / 1e6 : 0.0;
}

const char *vp_tls_version(const struct vp_tls *t)
{
	return t ? t->info.version : "";
}

struct vp_tls *vp_tls_free(struct vp_tls *t)
{
	if (t == NULL)
		return NULL;
	SSL_free(t->ssl);
	free(t);
	return NULL;
}

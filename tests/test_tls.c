/* Unit tests for probes/tls.c and probes/tls_classify.c: the pure mapping
 * of OpenSSL's failures to reasons, and live handshakes against an OpenSSL
 * server run on the probe's own loop, on loopback. Every certificate and
 * key is made here, in memory, when the test starts; only the two CA
 * certificates are written (as ca_file), to a scratch directory. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "agent/engine.h"
#include "agent/record.h"
#include "config/config.h"
#include "probes/tls.h"
#include "probes/wire.h"
#include "scripted.h"

#define N_ELEMS(a) (int)(sizeof(a) / sizeof((a)[0]))
#define SSL_ERR(r) ERR_PACK(ERR_LIB_SSL, 0, (r))
#define LONG_PATH "/etc/vpcprobe/" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.pem"

static void assert_text(const char *s, size_t max, int row, bool sentence)
{
	size_t len = strlen(s);

	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		ck_assert_msg(*p >= 0x20 && *p < 0x7f, "row %d: byte 0x%02x in '%s'", row, *p, s);
	ck_assert_msg(len < max - 1, "row %d: '%s' fills its buffer", row, s);
	if (sentence)
		ck_assert_msg(len > 40 && s[len - 1] == '.', "row %d: not a sentence: '%s'", row, s);
}

/* ---- the pure classifier ---- */

struct class_row {
	enum vp_tls_event ev;
	enum vp_kind kind;
	long verify_result;
	unsigned long err;
	const char *ca_file;
	int days;
	enum vp_verdict verdict;
	const char *reason;
	const char *detail;        /* a substring */
	const char *hint;          /* a substring */
};

#define EXP X509_V_ERR_CERT_HAS_EXPIRED
#define VFY SSL_ERR(SSL_R_CERTIFICATE_VERIFY_FAILED)
#define UNK VP_CERT_DAYS_UNKNOWN
#define PG VP_KIND_POSTGRES
#define RS VP_KIND_REDISS
#define TLS_ERR VP_VERDICT_TLS_ERROR

static const struct class_row class_rows[] = {
	/* 0: certificates */
	{ VP_TLS_EV_FAILED, PG, EXP, VFY, "/etc/vp/ca.pem", -3, TLS_ERR, "cert_expired",
	  "certificate has expired (X509 verify error 10); the server's certificate expired 3 days "
	  "ago", "gcloud sql ssl server-ca-certs rotate --instance=INSTANCE" },
	{ VP_TLS_EV_FAILED, RS, EXP, VFY, NULL, UNK, TLS_ERR, "cert_expired",
	  "refused: certificate has expired (X509 verify error 10)", "Memorystore's CAs last 10" },
	{ VP_TLS_EV_FAILED, VP_KIND_HTTPS, EXP, 0, NULL, -1, TLS_ERR, "cert_expired",
	  "expired 1 day ago", "renew the server's certificate" },
	{ VP_TLS_EV_FAILED, PG, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, VFY, "/etc/vp/ca.pem",
	  400, TLS_ERR, "unknown_ca", "unable to get local issuer certificate (X509 verify error "
	  "20); the server's certificate expires in 400 days", "does not chain to the CA in "
	  "ca_file '/etc/vp/ca.pem'. For Cloud SQL, download the instance's server CA with gcloud "
	  "sql instances describe INSTANCE --format='value(serverCaCert.cert)'" },
	{ VP_TLS_EV_FAILED, PG, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, VFY, NULL, 1, TLS_ERR,
	  "unknown_ca", "expires in 1 day", "this host's system CAs" },
	/* 5 */
	{ VP_TLS_EV_FAILED, RS, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, VFY, NULL, UNK, TLS_ERR,
	  "unknown_ca", "self-signed certificate", "Memorystore in-transit encryption: get the CA "
	  "with gcloud redis instances describe INSTANCE --region=REGION "
	  "--format='value(serverCaCerts)'" },
	{ VP_TLS_EV_FAILED, VP_KIND_HTTPS, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, VFY, NULL, UNK,
	  TLS_ERR, "unknown_ca", "X509 verify error 2", "intermediate certificates" },
	{ VP_TLS_EV_FAILED, RS, X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, VFY, LONG_PATH, UNK,
	  TLS_ERR, "unknown_ca", "X509 verify error 21", "/etc/vpcprobe/aaaa" },
	{ VP_TLS_EV_FAILED, PG, X509_V_ERR_HOSTNAME_MISMATCH, VFY, NULL, 30, TLS_ERR,
	  "hostname_mismatch", "hostname mismatch", "does not name '10.20.0.3'. Cloud SQL's server "
	  "certificates name the instance (PROJECT:INSTANCE), not its private IP" },
	{ VP_TLS_EV_FAILED, VP_KIND_HTTPS, X509_V_ERR_IP_ADDRESS_MISMATCH, VFY, NULL, 30, TLS_ERR,
	  "hostname_mismatch", "IP address mismatch", "subjectAltName" },
	/* 10 */
	{ VP_TLS_EV_FAILED, RS, X509_V_ERR_INVALID_CA, VFY, NULL, 30, TLS_ERR, "unknown_ca",
	  "invalid CA certificate", "Memorystore in-transit encryption" },
	{ VP_TLS_EV_FAILED, RS, X509_V_ERR_CERT_REVOKED, VFY, NULL, 30, TLS_ERR, "cert_revoked",
	  "certificate revoked", "install a new one" },
	{ VP_TLS_EV_FAILED, PG, X509_V_ERR_CERT_NOT_YET_VALID, VFY, NULL, 30, TLS_ERR,
	  "cert_not_yet_valid", "certificate is not yet valid", "timedatectl on both" },
	{ VP_TLS_EV_FAILED, PG, X509_V_ERR_CERT_SIGNATURE_FAILURE, 0, NULL, UNK, TLS_ERR,
	  "cert_invalid", "certificate signature failure", "check what listens there" },
	/* protocol versions */
	{ VP_TLS_EV_FAILED, PG, 0, SSL_ERR(SSL_R_UNSUPPORTED_PROTOCOL), NULL, UNK, TLS_ERR,
	  "protocol_version", "the TLS handshake failed: unsupported protocol",
	  "vpcprobe speaks TLS 1.2 and 1.3" },
	/* 15 */
	{ VP_TLS_EV_FAILED, RS, 0, SSL_ERR(SSL_R_WRONG_VERSION_NUMBER), NULL, UNK, TLS_ERR,
	  "protocol_version", "wrong version number", "tls-protocols" },
	{ VP_TLS_EV_FAILED, RS, 0, SSL_ERR(SSL_R_TLSV1_ALERT_PROTOCOL_VERSION), NULL, UNK, TLS_ERR,
	  "protocol_version", "tlsv1 alert protocol version", "ssl_min_protocol_version" },
	{ VP_TLS_EV_FAILED, RS, 0, SSL_ERR(SSL_R_NO_PROTOCOLS_AVAILABLE), NULL, UNK, TLS_ERR,
	  "protocol_version", "no protocols available", "TLS 1.0 or 1.1" },
	{ VP_TLS_EV_FAILED, RS, 0, SSL_ERR(SSL_R_VERSION_TOO_LOW), NULL, UNK, TLS_ERR,
	  "protocol_version", "version too low", "TLS 1.0 or 1.1" },
	/* a verify result recorded without verifying does not make the failure */
	{ VP_TLS_EV_FAILED, PG, X509_V_ERR_HOSTNAME_MISMATCH, SSL_ERR(SSL_R_UNSUPPORTED_PROTOCOL),
	  NULL, UNK, TLS_ERR, "protocol_version", "unsupported protocol", "TLS 1.2 and 1.3" },
	/* 20: the server's refusals */
	{ VP_TLS_EV_FAILED, PG, 0, SSL_ERR(SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED), NULL, 30,
	  TLS_ERR, "handshake_failure", "tlsv13 alert certificate required",
	  "TRUSTED_CLIENT_CERTIFICATE_REQUIRED" },
	{ VP_TLS_EV_FAILED, RS, 0, SSL_ERR(SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE), NULL, UNK, TLS_ERR,
	  "handshake_failure", "sslv3 alert handshake failure", "tls-auth-clients yes" },
	{ VP_TLS_EV_FAILED, RS, 0, SSL_ERR(SSL_R_NO_SHARED_CIPHER), NULL, UNK, TLS_ERR,
	  "handshake_failure", "no shared cipher", "compare the server's TLS settings" },
	{ VP_TLS_EV_FAILED, RS, 0, 0, NULL, UNK, TLS_ERR, "handshake_failure",
	  "OpenSSL gave no reason", "compare the server's TLS settings" },
	{ VP_TLS_EV_FAILED, RS, 0, ERR_PACK(ERR_LIB_X509, 0, X509_R_CERT_ALREADY_IN_HASH_TABLE),
	  NULL, UNK, TLS_ERR, "handshake_failure", "cert already in hash table", "TLS settings" },
	/* 25: the connection, not OpenSSL */
	{ VP_TLS_EV_NOT_TLS, RS, 0, 0, NULL, UNK, TLS_ERR, "handshake_failure",
	  "with bytes that are not TLS; they begin \"-ERR wrong\\x1b[2J\\xff\"",
	  "redis:// on 6379" },
	{ VP_TLS_EV_CLOSED, PG, 0, 0, NULL, UNK, TLS_ERR, "handshake_failure",
	  "closed the connection during the TLS handshake, after 1234 bytes of it",
	  "client certificate" },
	{ VP_TLS_EV_RESET, RS, 0, 0, NULL, UNK, TLS_ERR, "handshake_failure",
	  "reset the connection during the TLS handshake", "Redis tls-auth-clients yes" },
	{ VP_TLS_EV_TIMEOUT, RS, 0, 0, NULL, UNK, VP_VERDICT_TIMEOUT, "tls_timeout",
	  "no complete TLS handshake within 2000 ms (1234 bytes of it read)", "use redis://" },
	{ VP_TLS_EV_TOO_LARGE, PG, 0, 0, NULL, UNK, TLS_ERR, "handshake_failure",
	  "passed the 64 KiB bound (1234 bytes read)", "check what listens on this port" },
	/* 30 */
	{ VP_TLS_EV_NOT_OFFERED, PG, 0, 0, NULL, UNK, TLS_ERR, "tls_not_offered",
	  "('N' to SSLRequest)", "Cloud SQL Auth Proxy" },
	{ VP_TLS_EV_FAILED, RS, 0, SSL_ERR(SSL_R_EXCESSIVE_MESSAGE_SIZE), NULL, UNK, TLS_ERR,
	  "handshake_failure", "excessive message size", "more TLS handshake than any Cloud SQL" },
};

START_TEST(test_classify)
{
	static const uint8_t first[] = "-ERR wrong\x1b[2J\xff";
	const struct class_row *c = &class_rows[_i];
	struct vp_tls_obs o = { .event = c->ev, .kind = c->kind, .verify_result = c->verify_result,
	                        .err = c->err, .ca_file = c->ca_file, .cert_days_left = c->days,
	                        .host = "10.20.0.3", .bytes = 1234, .timeout_ms = 2000,
	                        .sys_err = ECONNRESET, .first = first,
	                        .first_len = sizeof(first) - 1 };
	struct vp_verdict_out v;

	memset(&v, 0xa5, sizeof(v));
	vp_tls_classify(&o, &v);
	ck_assert_msg(v.verdict == c->verdict, "row %d: %s", _i, vp_verdict_name(v.verdict));
	ck_assert_int_eq(v.reason, VP_REASON_PROTOCOL);
	ck_assert_msg(strcmp(v.reason_text, c->reason) == 0, "row %d: %s", _i, v.reason_text);
	ck_assert_msg(strstr(v.detail, c->detail) != NULL, "row %d: detail '%s'", _i, v.detail);
	ck_assert_msg(strstr(v.hint, c->hint) != NULL, "row %d: hint '%s'", _i, v.hint);
	assert_text(v.detail, sizeof(v.detail), _i, false);
	assert_text(v.hint, sizeof(v.hint), _i, true);
	ck_assert_int_eq(v.err, c->ev == VP_TLS_EV_TIMEOUT ? ETIMEDOUT :
	                 c->ev == VP_TLS_EV_RESET ? ECONNRESET : 0);
}
END_TEST

struct looks_row {
	const char *bytes;
	size_t len;
	bool tls;
};

static const struct looks_row looks_rows[] = {
	{ "\x16\x03\x03\x00\x7a", 5, true },   /* ServerHello */
	{ "\x15\x03\x03\x00\x02", 5, true },   /* an alert */
	{ "\x16\x03\x01", 3, true },
	{ "\x16\x03\x00", 3, true },
	{ "\x16", 1, true },                   /* too short to tell: OpenSSL decides */
	{ "", 0, true },
	{ "\x16\x03\x05", 3, false },
	{ "\x16\x02", 2, false },
	{ "\x17\x03\x03", 3, false },          /* application data before a handshake */
	{ "-ERR Protocol error", 19, false },
	{ "HTTP/1.1 400", 12, false },
	{ "N", 1, false },
};

START_TEST(test_looks_like_tls)
{
	const struct looks_row *c = &looks_rows[_i];

	ck_assert_msg(vp_tls_looks_like_tls((const uint8_t *)c->bytes, c->len) == c->tls,
	              "row %d", _i);
}
END_TEST

/* ---- certificates, made once per run ---- */

struct certs {
	EVP_PKEY *key;             /* one key for every certificate: only the chains differ */
	X509 *ca;                  /* "vpcprobe test CA" */
	X509 *other_ca;            /* a CA that ca_file does not hold */
	X509 *good;                /* by 'ca', for db.lab.test and 127.0.0.1, 30 days left */
	X509 *expired;             /* by 'ca', expired 2 days ago */
	X509 *self;                /* self-signed, for db.lab.test */
	X509 *foreign;             /* by 'other_ca' */
	char dir[32];
	char ca_pem[64];           /* 'ca' as a ca_file */
	char empty_pem[64];        /* a ca_file without a certificate */
};

static struct certs C;

/* Outside a test, where check's assertions cannot report. */
static void need(bool ok, const char *what)
{
	if (ok)
		return;
	fprintf(stderr, "test_tls: making the test certificates: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	exit(EXIT_FAILURE);
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	need(ext != NULL, "X509V3_EXT_conf_nid");
	need(X509_add_ext(cert, ext, -1) == 1, "X509_add_ext");
	X509_EXTENSION_free(ext);
}

/* A certificate valid from 'from' to 'to' days from now, signed by
 * 'issuer' (NULL: by itself). */
static X509 *make_cert(const char *cn, X509 *issuer, long from, long to, bool ca)
{
	static long serial = 1;
	X509 *c = X509_new();
	X509_NAME *name;

	need(c != NULL, "X509_new");
	need(X509_set_version(c, X509_VERSION_3) == 1, "X509_set_version");
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
	X509_gmtime_adj(X509_getm_notBefore(c), from * 86400);
	X509_gmtime_adj(X509_getm_notAfter(c), to * 86400);
	need(X509_set_pubkey(c, C.key) == 1, "X509_set_pubkey");
	name = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
	if (ca) {
		add_ext(c, issuer ? issuer : c, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(c, issuer ? issuer : c, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(c, issuer ? issuer : c, NID_subject_alt_name, "DNS:db.lab.test,IP:127.0.0.1");
	}
	need(X509_sign(c, C.key, EVP_sha256()) > 0, "X509_sign");
	return c;
}

static void write_pem(const char *path, X509 *cert)
{
	FILE *f = fopen(path, "w");

	need(f != NULL, path);
	if (cert)
		need(PEM_write_X509(f, cert) == 1, "PEM_write_X509");
	else
		fputs("# no certificate here\n", f);
	need(fclose(f) == 0, path);
}

static void certs_make(void)
{
	C.key = EVP_EC_gen("P-256");
	need(C.key != NULL, "EVP_EC_gen");
	C.ca = make_cert("vpcprobe test CA", NULL, -1, 30, true);
	C.other_ca = make_cert("another test CA", NULL, -1, 30, true);
	C.good = make_cert("db.lab.test", C.ca, -1, 30, false);
	C.expired = make_cert("db.lab.test", C.ca, -30, -2, false);
	C.self = make_cert("db.lab.test", NULL, -1, 30, false);
	C.foreign = make_cert("db.lab.test", C.other_ca, -1, 30, false);
	snprintf(C.dir, sizeof(C.dir), "/tmp/vp-test-tls-XXXXXX");
	need(mkdtemp(C.dir) != NULL, C.dir);
	snprintf(C.ca_pem, sizeof(C.ca_pem), "%s/ca.pem", C.dir);
	snprintf(C.empty_pem, sizeof(C.empty_pem), "%s/empty.pem", C.dir);
	write_pem(C.ca_pem, C.ca);
	write_pem(C.empty_pem, NULL);
}

static void certs_free(void)
{
	need(unlink(C.ca_pem) == 0, C.ca_pem);
	need(unlink(C.empty_pem) == 0, C.empty_pem);
	need(rmdir(C.dir) == 0, C.dir);
	X509_free(C.ca);
	X509_free(C.other_ca);
	X509_free(C.good);
	X509_free(C.expired);
	X509_free(C.self);
	X509_free(C.foreign);
	EVP_PKEY_free(C.key);
}

/* ---- an OpenSSL server on the probe's loop ---- */

enum srv_mode {
	SRV_TLS,          /* a handshake, then +PONG or a PostgreSQL login */
	SRV_PLAIN,        /* plaintext Redis: says -ERR at once */
	SRV_CLOSE,        /* closes when the ClientHello comes */
	SRV_ZEROS,        /* answers with 80 KiB of handshake records of zeros: empty
	                   * HelloRequests, which a client ignores (RFC 5246 7.4.1.1) */
};

enum srv_cert { CERT_GOOD, CERT_EXPIRED, CERT_SELF, CERT_FOREIGN };

struct srv_opts {
	enum srv_mode mode;
	enum srv_cert cert;
	int max_version;          /* 0: OpenSSL's default */
	int extra_chain;          /* copies of the CA sent along: a huge chain */
	bool want_client_cert;
};

struct srv {
	struct scripted net;
	enum vp_kind kind;
	struct srv_opts o;
	X509 *cert;               /* borrowed from C */
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *rbio;
	BIO *wbio;
	bool answered_ssl_request;
	bool replied;
	uint8_t plain[4096];
	size_t plen;
};

static SSL_CTX *srv_ctx(const struct srv_opts *o, X509 *cert)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(SSL_CTX_use_certificate(ctx, cert), 1);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey(ctx, C.key), 1);
	if (o->max_version == TLS1_VERSION) {
		/* OpenSSL 3 allows TLS 1.0 only at security level 0. */
		SSL_CTX_set_security_level(ctx, 0);
		ck_assert_int_eq(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"), 1);
		ck_assert_int_eq(SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION), 1);
	}
	if (o->max_version)
		ck_assert_int_eq(SSL_CTX_set_max_proto_version(ctx, o->max_version), 1);
	for (int i = 0; i < o->extra_chain; i++)
		ck_assert_int_eq(SSL_CTX_add_extra_chain_cert(ctx, X509_dup(C.ca)), 1);
	if (o->want_client_cert)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return ctx;
}

static void srv_flush(struct srv *s)
{
	uint8_t buf[VP_TLS_RECORD_MAX];
	int n;

	while ((n = BIO_read(s->wbio, buf, sizeof(buf))) > 0)
		scripted_send(&s->net, buf, (size_t)n);
}

/* The plaintext the probe sent: answer PING, or log it in. */
static void srv_answer(struct srv *s)
{
	static const uint8_t login[] = "R\0\0\0\x08\0\0\0\0" "Z\0\0\0\x05I";

	if (s->replied)
		return;
	if (s->kind == VP_KIND_REDISS && memmem(s->plain, s->plen, "PING", 4) != NULL) {
		ck_assert_int_eq(SSL_write(s->ssl, "+PONG\r\n", 7), 7);
		s->replied = true;
	} else if (s->kind == VP_KIND_POSTGRES && s->plen >= 8 && s->plen >= (size_t)vp_be32(s->plain)) {
		ck_assert_int_eq(SSL_write(s->ssl, login, sizeof(login) - 1), sizeof(login) - 1);
		s->replied = true;
	}
}

static void srv_tls(struct srv *s, const uint8_t *in, size_t len)
{
	int n;

	ck_assert_int_eq(BIO_write(s->rbio, in, (int)len), (int)len);
	if (!SSL_is_init_finished(s->ssl))
		(void)SSL_do_handshake(s->ssl); /* a failure sends its alert; the probe decides */
	while (SSL_is_init_finished(s->ssl) && s->plen < sizeof(s->plain) &&
	       (n = SSL_read(s->ssl, s->plain + s->plen, (int)(sizeof(s->plain) - s->plen))) > 0)
		s->plen += (size_t)n;
	if (SSL_is_init_finished(s->ssl))
		srv_answer(s);
	srv_flush(s);
	ERR_clear_error();
}

static void srv_read(struct scripted *net)
{
	struct srv *s = net->data;
	const uint8_t *in = net->in;
	size_t len = net->inlen;

	if (s->o.mode == SRV_PLAIN) {
		scripted_consume(net, len);
		return;
	}
	if (s->o.mode == SRV_CLOSE) {
		scripted_close_client(net);
		return;
	}
	if (s->o.mode == SRV_ZEROS) {
		static uint8_t record[5 + 16384] = { 22, 3, 3, 0x40, 0x00 };

		for (int i = 0; i < 5; i++)
			scripted_send(net, record, sizeof(record));
		scripted_consume(net, len);
		return;
	}
	if (s->kind == VP_KIND_POSTGRES && !s->answered_ssl_request) {
		ck_assert_uint_ge(len, 8);   /* the SSLRequest */
		ck_assert_uint_eq(vp_be32(in + 4), 80877103);
		scripted_send(net, "S", 1);
		s->answered_ssl_request = true;
		in += 8;
		len -= 8;
	}
	if (len > 0)
		srv_tls(s, in, len);
	scripted_consume(net, net->inlen);
}

static void srv_connect(struct scripted *net)
{
	struct srv *s = net->data;

	if (s->o.mode == SRV_PLAIN)
		scripted_send(net, "-ERR Protocol error\r\n", 21);
}

/* Listens on loopback; TLS state is ready before the probe connects. */
static uint16_t srv_listen(uv_loop_t *loop, struct srv *s)
{
	if (s->o.mode == SRV_TLS) {
		s->ctx = srv_ctx(&s->o, s->cert);
		s->ssl = SSL_new(s->ctx);
		s->rbio = BIO_new(BIO_s_mem());
		s->wbio = BIO_new(BIO_s_mem());
		ck_assert(s->ssl && s->rbio && s->wbio);
		SSL_set_bio(s->ssl, s->rbio, s->wbio);
		SSL_set_accept_state(s->ssl);
	}
	s->net.on_connect = srv_connect;
	s->net.on_read = srv_read;
	s->net.data = s;
	return scripted_listen(loop, &s->net);
}

static void srv_free(struct srv *s)
{
	SSL_free(s->ssl);
	SSL_CTX_free(s->ctx);
}

/* ---- probes against it ---- */

enum days { D_ANY, D_30, D_EXPIRED, D_UNKNOWN };

struct probe_row {
	enum vp_kind kind;
	enum vp_tls_mode tls;      /* postgres */
	const char *host;          /* the URL's host: what verify-full checks */
	int ca;                    /* 0: none, 1: the test CA, 2: a missing file, 3: no cert in it */
	struct srv_opts srv;
	uint32_t timeout_ms;
	enum vp_verdict verdict;
	const char *reason;
	const char *detail;        /* a substring, NULL: not checked */
	const char *version;       /* the record's tls.version; NULL: none */
	enum days days;
};

#define GOOD { SRV_TLS, CERT_GOOD, 0, 0, false }
#define OK VP_VERDICT_OK
#define HOST "db.lab.test"
/* A safety net, not a measure: every row ends by itself long before it, on
 * a loaded machine too. */
#define DEADLINE 10000

static const struct probe_row probe_rows[] = {
	/* 0: the good certificate, every way */
	{ RS, 0, HOST, 1, GOOD, DEADLINE, OK, "pong", "+PONG without AUTH, over TLSv1.3", "TLSv1.3",
	  D_30 },
	{ PG, VP_TLS_PREFER, HOST, 0, GOOD, DEADLINE, OK, "accepted", "trust); over TLSv1.3",
	  "TLSv1.3", D_30 },
	{ PG, VP_TLS_REQUIRE, HOST, 0, GOOD, DEADLINE, OK, "accepted", "over TLSv1.3", "TLSv1.3", D_30 },
	{ PG, VP_TLS_VERIFY_FULL, HOST, 1, GOOD, DEADLINE, OK, "accepted", "over TLSv1.3", "TLSv1.3",
	  D_30 },
	{ PG, VP_TLS_VERIFY_FULL, "127.0.0.1", 1, GOOD, DEADLINE, OK, "accepted", NULL, "TLSv1.3",
	  D_30 },
	/* 5 */
	{ RS, 0, HOST, 1, { SRV_TLS, CERT_GOOD, TLS1_2_VERSION, 0, false }, DEADLINE, OK, "pong",
	  "over TLSv1.2", "TLSv1.2", D_30 },
	/* what the certificate says wrong */
	{ PG, VP_TLS_VERIFY_FULL, "wrong.lab.test", 1, GOOD, DEADLINE, TLS_ERR, "hostname_mismatch",
	  "hostname mismatch", NULL, D_30 },
	{ PG, VP_TLS_VERIFY_FULL, "127.0.0.2", 1, GOOD, DEADLINE, TLS_ERR, "hostname_mismatch",
	  "IP address mismatch", NULL, D_30 },
	{ PG, VP_TLS_VERIFY_FULL, HOST, 1, { SRV_TLS, CERT_EXPIRED, 0, 0, false }, DEADLINE, TLS_ERR,
	  "cert_expired", "certificate has expired", NULL, D_EXPIRED },
	{ PG, VP_TLS_REQUIRE, HOST, 0, { SRV_TLS, CERT_EXPIRED, 0, 0, false }, DEADLINE, OK, "accepted",
	  "over TLSv1.3", "TLSv1.3", D_EXPIRED },   /* require: encrypted, not verified */
	/* 10 */
	{ RS, 0, HOST, 1, { SRV_TLS, CERT_SELF, 0, 0, false }, DEADLINE, TLS_ERR, "unknown_ca",
	  "self-signed certificate", NULL, D_30 },
	{ RS, 0, HOST, 1, { SRV_TLS, CERT_FOREIGN, 0, 0, false }, DEADLINE, TLS_ERR, "unknown_ca",
	  "unable to get local issuer certificate", NULL, D_30 },
	{ RS, 0, HOST, 0, GOOD, DEADLINE, TLS_ERR, "unknown_ca", NULL, NULL, D_30 },  /* system CAs */
	{ PG, VP_TLS_PREFER, HOST, 1, { SRV_TLS, CERT_SELF, 0, 0, false }, DEADLINE, TLS_ERR,
	  "unknown_ca", NULL, NULL, D_30 },   /* prefer verifies the chain with a ca_file */
	/* the server's refusals */
	{ RS, 0, HOST, 1, { SRV_TLS, CERT_GOOD, TLS1_VERSION, 0, false }, DEADLINE, TLS_ERR,
	  "protocol_version", NULL, NULL, D_ANY },
	/* 15 */
	{ PG, VP_TLS_REQUIRE, HOST, 0, { SRV_TLS, CERT_GOOD, 0, 0, true }, DEADLINE, TLS_ERR,
	  "handshake_failure", "certificate required", "TLSv1.3", D_30 },  /* after the handshake */
	{ RS, 0, HOST, 0, { SRV_CLOSE, CERT_GOOD, 0, 0, false }, DEADLINE, TLS_ERR, "handshake_failure",
	  "closed the connection during the TLS handshake, after 0 bytes", NULL, D_UNKNOWN },
	{ RS, 0, HOST, 0, { SRV_PLAIN, CERT_GOOD, 0, 0, false }, DEADLINE, TLS_ERR, "handshake_failure",
	  "not TLS; they begin \"-ERR Protocol error\\r\\n\"", NULL, D_UNKNOWN },
	{ RS, 0, HOST, 1, { SRV_TLS, CERT_GOOD, 0, 200, false }, DEADLINE, TLS_ERR, "handshake_failure",
	  "excessive message size", NULL, D_UNKNOWN },   /* a chain past max_cert_list */
	{ RS, 0, HOST, 1, { SRV_ZEROS, CERT_GOOD, 0, 0, false }, DEADLINE, TLS_ERR,
	  "handshake_failure", "passed the 64 KiB bound (", NULL, D_UNKNOWN },
	/* 20: the agent's own trouble */
	{ RS, 0, HOST, 2, GOOD, DEADLINE, VP_VERDICT_LOCAL_ERROR, "local_other",
	  "cannot use ca_file '/nonexistent/ca.pem': No such file or directory", NULL, D_UNKNOWN },
	{ RS, 0, HOST, 3, GOOD, DEADLINE, VP_VERDICT_LOCAL_ERROR, "local_other", "cannot use ca_file",
	  NULL, D_UNKNOWN },
};

static const char *ca_file_of(int ca)
{
	const char *files[] = { NULL, C.ca_pem, "/nonexistent/ca.pem", C.empty_pem };

	return files[ca];
}

static X509 *cert_of(enum srv_cert which)
{
	X509 *certs[] = { C.good, C.expired, C.self, C.foreign };

	return certs[which];
}

static void check_days(const struct probe_row *row, int days)
{
	if (row->days == D_30)
		ck_assert_msg(days >= 29 && days <= 30, "%d days left", days);
	else if (row->days == D_EXPIRED)
		ck_assert_msg(days == -2, "%d days left", days);
	else if (row->days == D_UNKNOWN)
		ck_assert_int_eq(days, VP_CERT_DAYS_UNKNOWN);
}

/* The record of a TLS probe: timings_ms.tls and the "tls" object. */
static void check_record(const struct probe_row *row, const struct vp_probe_result *res)
{
	struct vp_record_ctx ctx = { "agent", "t", HOST, NULL, row->kind };
	json_t *rec = vp_record_json(&ctx, res);
	json_t *tls = json_object_get(rec, "tls");
	json_t *ms = json_object_get(json_object_get(rec, "timings_ms"), "tls");

	ck_assert_ptr_nonnull(rec);
	ck_assert_ptr_nonnull(tls);
	ck_assert(json_is_true(json_object_get(tls, "offered")));
	ck_assert_str_eq(json_string_value(json_object_get(tls, "version")), row->version);
	ck_assert_ptr_nonnull(json_string_value(json_object_get(tls, "cipher")));
	ck_assert_int_eq(json_integer_value(json_object_get(tls, "cert_days_left")),
	                 res->cert_days_left);
	ck_assert(json_is_real(ms) && json_real_value(ms) >= 0);
	json_decref(rec);
}

START_TEST(test_probe)
{
	const struct probe_row *row = &probe_rows[_i];
	struct vp_target target = { .tls = row->tls, .ca_file = (char *)ca_file_of(row->ca),
	                            .user = "vp", .database = "db" };
	struct srv s = { .kind = row->kind, .o = row->srv };
	struct vp_probe_req req = { .kind = row->kind, .target = &target,
	                            .timeout_ms = row->timeout_ms };
	struct scripted_run r;
	const struct vp_verdict_out *v = &r.res.v;

	snprintf(target.url.host, sizeof(target.url.host), "%s", row->host);
	s.cert = cert_of(row->srv.cert);
	scripted_run_init(&r);
	scripted_run_probe(&r, &req, srv_listen(&r.loop, &s));

	ck_assert_msg(v->verdict == row->verdict && strcmp(vp_verdict_reason(v), row->reason) == 0,
	              "row %d: %s %s, expected %s %s: %s", _i, vp_verdict_name(v->verdict),
	              vp_verdict_reason(v), vp_verdict_name(row->verdict), row->reason, v->detail);
	ck_assert_msg(row->detail == NULL || strstr(v->detail, row->detail) != NULL,
	              "row %d: detail '%s' lacks '%s'", _i, v->detail, row->detail);
	assert_text(v->detail, sizeof(v->detail), _i, false);
	if (row->verdict != OK)
		assert_text(v->hint, sizeof(v->hint), _i, true);
	ck_assert(r.res.tls.asked);
	check_days(row, r.res.cert_days_left);
	if (row->version) {
		ck_assert_str_eq(r.res.tls.version, row->version);
		check_record(row, &r.res);
	} else {
		ck_assert_str_eq(r.res.tls.version, "");
	}
	scripted_run_end(&r, &s.net);
	srv_free(&s);
	vp_tls_cache_clear();
}
END_TEST

/* 'N' to SSLRequest: prefer goes on in plaintext and the record says that
 * TLS was asked for and not offered; a deadline in the handshake is TLS's. */
START_TEST(test_not_offered_record)
{
	struct vp_probe_result res = { .tls = { .asked = true }, .tls_ms = -1.0,
	                               .cert_days_left = VP_CERT_DAYS_UNKNOWN, .dns_ms = -1.0,
	                               .connect_ms = 1.0, .protocol_ms = 2.0, .total_ms = 3.0 };
	struct vp_record_ctx ctx = { "agent", "t", HOST, NULL, VP_KIND_POSTGRES };
	json_t *rec = vp_record_json(&ctx, &res);
	json_t *tls = json_object_get(rec, "tls");

	ck_assert(json_is_false(json_object_get(tls, "offered")));
	ck_assert(json_is_null(json_object_get(tls, "version")));
	ck_assert(json_is_null(json_object_get(tls, "cipher")));
	ck_assert(json_is_null(json_object_get(tls, "cert_days_left")));
	ck_assert(json_is_null(json_object_get(json_object_get(rec, "timings_ms"), "tls")));
	json_decref(rec);
	res.tls.asked = false;
	rec = vp_record_json(&ctx, &res);
	ck_assert_ptr_null(json_object_get(rec, "tls"));
	json_decref(rec);
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *pure = tcase_create("classify");
	TCase *probe = tcase_create("probe");

	tcase_add_loop_test(pure, test_classify, 0, N_ELEMS(class_rows));
	tcase_add_loop_test(pure, test_looks_like_tls, 0, N_ELEMS(looks_rows));
	tcase_add_test(pure, test_not_offered_record);
	tcase_set_timeout(probe, 30);
	tcase_add_loop_test(probe, test_probe, 0, N_ELEMS(probe_rows));
	suite_add_tcase(s, pure);
	suite_add_tcase(s, probe);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tls_suite());
	int failed;

	/* As the agent's first SSL_CTX_new() does: the error strings. */
	need(OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS, NULL) == 1, "OPENSSL_init_ssl");
	certs_make();
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	certs_free();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

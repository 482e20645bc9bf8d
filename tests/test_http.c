/* Unit tests for the http(s) probe: its pure decisions (probes/http_status.c)
 * as tables, and the probe itself (probes/http.c over agent/curl_uv.c)
 * against a scripted HTTP server on loopback, on the probe's own loop. Each
 * probe test ends with uv_loop_close() == 0: every handle of the probe, of
 * curl's multi and of its polls is closed. */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine.h"
#include "config/config.h"
#include "probes/http.h"
#include "probes/tls.h"

#define N_ELEMS(a) (int)(sizeof(a) / sizeof((a)[0]))

static void assert_printable(const char *s, int row)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		ck_assert_msg(*p >= 0x20 && *p < 0x7f, "row %d: byte 0x%02x in '%s'", row, *p, s);
}

static void assert_verdict(const struct vp_verdict_out *v, int row, enum vp_verdict verdict,
                           const char *reason, const char *detail, const char *hint)
{
	ck_assert_msg(v->verdict == verdict, "row %d: %s %s, expected %s: %s", row,
	              vp_verdict_name(v->verdict), vp_verdict_reason(v), vp_verdict_name(verdict),
	              v->detail);
	ck_assert_msg(strcmp(vp_verdict_reason(v), reason) == 0, "row %d: reason %s, expected %s: %s",
	              row, vp_verdict_reason(v), reason, v->detail);
	ck_assert_msg(strstr(v->detail, detail) != NULL, "row %d: detail '%s' lacks '%s'", row,
	              v->detail, detail);
	ck_assert_msg(strstr(v->hint, hint) != NULL, "row %d: hint '%s' lacks '%s'", row, v->hint,
	              hint);
	if (verdict != VP_VERDICT_OK)
		ck_assert_msg(v->hint[0] != '\0' || verdict == VP_VERDICT_TIMEOUT, "row %d: no hint", row);
	assert_printable(v->detail, row);
	assert_printable(v->hint, row);
}

/* ---- expect_status ---- */

#define R1(a, b) { 1, { { a, b } } }
#define R2(a, b, c, d) { 2, { { a, b }, { c, d } } }

struct expect_case {
	struct vp_status_ranges expect;
	long status;
	bool ok;
	const char *text;
};

static const struct expect_case expect_cases[] = {
	{ { 0 }, 200, true, "200-399" },
	{ { 0 }, 399, true, "200-399" },
	{ { 0 }, 199, false, "200-399" },
	{ { 0 }, 400, false, "200-399" },
	{ { 0 }, 0, false, "200-399" },
	{ R1(204, 204), 204, true, "204" },
	{ R1(204, 204), 200, false, "204" },
	{ R2(200, 299, 404, 404), 404, true, "200-299,404" },
	{ R2(200, 299, 404, 404), 403, false, "200-299,404" },
	{ R2(200, 299, 404, 404), 299, true, "200-299,404" },
	{ R1(100, 599), 503, true, "100-599" },
};

START_TEST(test_expect)
{
	const struct expect_case *c = &expect_cases[_i];
	char text[VP_HTTP_EXPECT_TEXT_MAX];

	ck_assert_int_eq(vp_http_status_expected(&c->expect, c->status), c->ok);
	vp_http_expect_text(&c->expect, text, sizeof(text));
	ck_assert_str_eq(text, c->text);
	if (c->expect.n == 0) {
		ck_assert_int_eq(vp_http_status_expected(NULL, c->status), c->ok);
		vp_http_expect_text(NULL, text, sizeof(text));
		ck_assert_str_eq(text, c->text);
	}
}
END_TEST

/* ---- the status decision ---- */

struct status_case {
	enum vp_kind kind;
	long status;
	struct vp_status_ranges expect;
	const char *server;
	const char *body;             /* NUL-terminated here, so no NUL inside */
	enum vp_verdict verdict;
	const char *reason;
	const char *detail;
	const char *hint;
};

#define HTTP VP_KIND_HTTP
#define HTTPS VP_KIND_HTTPS
#define OK VP_VERDICT_OK
#define PE VP_VERDICT_PROTOCOL_ERROR

static const struct status_case status_cases[] = {
	{ HTTP, 200, { 0 }, "", "hello", OK, "http_200", "HTTP 200 OK to GET /healthz, 5 body bytes", "" },
	{ HTTP, 301, { 0 }, "", "", OK, "http_301", "HTTP 301 Moved Permanently to GET /healthz", "" },
	{ HTTP, 503, { 0 }, "Google Frontend", "no healthy upstream", PE, "http_503",
	  "HTTP 503 Service Unavailable to GET /healthz from 'Google Frontend', expected 200-399; "
	  "body \"no healthy upstream\"", "load balancer with no healthy backend" },
	{ HTTP, 502, { 0 }, "", "", PE, "http_502", "HTTP 502 Bad Gateway to GET /healthz, expected "
	  "200-399; body empty", "35.191.0.0/16 and 130.211.0.0/22" },
	{ HTTP, 504, { 0 }, "", "", PE, "http_504", "HTTP 504 Gateway Timeout", "got no answer from "
	  "its backend" },
	{ HTTP, 500, { 0 }, "", "boom", PE, "http_500", "body \"boom\"", "the service itself failed" },
	{ HTTP, 599, { 0 }, "", "", PE, "http_599", "HTTP 599 to GET", "the service itself failed" },
	{ HTTP, 401, { 0 }, "", "", PE, "http_401", "HTTP 401 Unauthorized", "roles/run.invoker" },
	{ HTTP, 403, { 0 }, "", "", PE, "http_403", "HTTP 403 Forbidden", "Check IAM" },
	{ HTTP, 404, { 0 }, "", "", PE, "http_404", "HTTP 404 Not Found", "no such path" },
	{ HTTP, 404, R2(200, 299, 404, 404), "", "", OK, "http_404", "HTTP 404 Not Found", "" },
	{ HTTP, 421, { 0 }, "", "", PE, "http_421", "Misdirected", "host_header" },
	{ HTTP, 418, { 0 }, "", "", PE, "http_418", "HTTP 418 to GET", "rejected the request" },
	{ HTTP, 301, R1(200, 200), "", "", PE, "http_301", "expected 200", "redirects" },
	{ HTTP, 204, R1(200, 202), "", "", PE, "http_204", "expected 200-202", "expect_status" },
	{ HTTP, 600, { 0 }, "", "", PE, "http_600", "HTTP 600", "outside the HTTP range" },
	{ HTTP, 0, { 0 }, "", "SSH-2.0-OpenSSH_9.2", PE, "unexpected_reply",
	  "not an HTTP reply to GET /healthz: it begins \"SSH-2.0-OpenSSH_9.2\"", "(https://)" },
	{ HTTPS, 0, { 0 }, "", "", PE, "unexpected_reply", "it begins \"\"", "not HTTP" },
	/* what the server says is only ever shown escaped */
	{ HTTP, 500, { 0 }, "evil\x1b[31m", "\x01\xff<script>", PE, "http_500",
	  "from 'evil\\x1b[31m'", "" },
	{ HTTP, 500, { 0 }, "", "\x01\xff<script>", PE, "http_500", "body \"\\x01\\xff<script>\"", "" },
	{ HTTP, 500, { 0 }, "", "0123456789012345678901234567890123456789012345678901234567890",
	  PE, "http_500", "012345678901234567890123456789012345678901234567\"...", "" },
};

START_TEST(test_status)
{
	const struct status_case *c = &status_cases[_i];
	struct vp_http_answer a = {
		.kind = c->kind, .status = c->status, .expect = &c->expect, .path = "/healthz",
		.server = c->server, .body = (const uint8_t *)c->body, .body_len = strlen(c->body),
		.body_total = strlen(c->body), .tls_ms = -1.0,
	};
	struct vp_verdict_out v;

	vp_http_decide_status(&a, &v);
	assert_verdict(&v, _i, c->verdict, c->reason, c->detail, c->hint);
}
END_TEST

/* https: the handshake's time and the certificate's days in the detail. */
START_TEST(test_status_tls_words)
{
	struct vp_http_answer a = {
		.kind = VP_KIND_HTTPS, .status = 200, .path = "/", .server = "", .tls_ms = 3.25,
		.cert_days_known = true, .cert_days = 89, .body_total = 70000, .body_cut = true,
	};
	struct vp_verdict_out v;

	vp_http_decide_status(&a, &v);
	assert_verdict(&v, 0, OK, "http_200", "70000 body bytes (read up to the 64 KiB bound), "
	               "TLS handshake 3.2 ms, certificate valid for 89 more days", "");
	a.kind = VP_KIND_HTTP;
	vp_http_decide_status(&a, &v);
	ck_assert_ptr_null(strstr(v.detail, "TLS"));
}
END_TEST

/* Who answered: the Server header, and the Via header of a proxy. */
START_TEST(test_status_from)
{
	struct vp_http_answer a = {
		.kind = VP_KIND_HTTP, .status = 502, .path = "/", .server = "nginx",
		.via = "1.1 google", .tls_ms = -1.0,
	};
	struct vp_verdict_out v;

	vp_http_decide_status(&a, &v);
	assert_verdict(&v, 0, PE, "http_502", "HTTP 502 Bad Gateway to GET / from 'nginx' via "
	               "'1.1 google', expected", "load balancer");
	a.server = NULL;
	vp_http_decide_status(&a, &v);
	assert_verdict(&v, 1, PE, "http_502", "to GET / via '1.1 google', expected", "");
}
END_TEST

/* ---- the X509 verify result ---- */

struct x509_case {
	long err;
	const char *reason;
};

static const struct x509_case x509_cases[] = {
	{ X509_V_OK, "hostname_mismatch" },
	{ X509_V_ERR_HOSTNAME_MISMATCH, "hostname_mismatch" },
	{ X509_V_ERR_IP_ADDRESS_MISMATCH, "hostname_mismatch" },
	{ X509_V_ERR_CERT_HAS_EXPIRED, "cert_expired" },
	{ X509_V_ERR_CERT_NOT_YET_VALID, "cert_not_yet_valid" },
	{ X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, "unknown_ca" },
	{ X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, "unknown_ca" },
	{ X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, "unknown_ca" },
	{ X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, "unknown_ca" },
	{ X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, "unknown_ca" },
	{ X509_V_ERR_CERT_UNTRUSTED, "unknown_ca" },
	{ X509_V_ERR_INVALID_CA, "unknown_ca" },
	{ X509_V_ERR_CERT_REVOKED, "cert_revoked" },
	{ X509_V_ERR_CERT_SIGNATURE_FAILURE, "cert_invalid" },
	{ X509_V_ERR_INVALID_PURPOSE, "cert_invalid" },
	{ 9999, "cert_invalid" },
};

START_TEST(test_x509)
{
	ck_assert_str_eq(vp_tls_verify_reason(x509_cases[_i].err), x509_cases[_i].reason);
}
END_TEST

/* The same refused certificate gets the same reason from https (curl) as
 * from postgres (probes/tls.c): both come from vp_tls_classify(). */
START_TEST(test_same_reason)
{
	const struct x509_case *c = &x509_cases[_i];
	struct vp_http_failure f = {
		.kind = HTTPS, .rc = CURLE_PEER_FAILED_VERIFICATION, .verify_result = c->err,
		.errtext = "SSL certificate problem", .host = "db.internal", .port = 443,
	};
	struct vp_tls_obs o = {
		.event = VP_TLS_EV_FAILED, .kind = VP_KIND_POSTGRES, .verify = VP_VERIFY_HOST,
		.verify_result = c->err, .host = "db.internal",
		.cert_days_left = VP_CERT_DAYS_UNKNOWN,
	};
	struct vp_verdict_out h, pg;

	if (c->err == X509_V_OK)
		return; /* curl's own host name check: postgres has none */
	vp_http_decide_failure(&f, &h);
	vp_tls_classify(&o, &pg);
	ck_assert_int_eq(h.verdict, VP_VERDICT_TLS_ERROR);
	ck_assert_int_eq(pg.verdict, VP_VERDICT_TLS_ERROR);
	ck_assert_str_eq(h.reason_text, pg.reason_text);
	ck_assert_str_eq(h.reason_text, c->reason);
}
END_TEST

/* The same handshake failure, by OpenSSL's first error, gets the same
 * reason from https (curl quotes the code in its message) as from rediss
 * (probes/tls.c reads it from the queue). */
struct code_case {
	unsigned long err;
	const char *text;             /* curl's message around it */
	const char *reason;
};

static const struct code_case code_cases[] = {
	{ 0x0680009BUL, "asn1 encoding routines::too long", "cert_invalid" },
	{ 0x0680007BUL, "asn1 encoding routines::header too long", "cert_invalid" },
	{ 0x0A00042EUL, "SSL routines::tlsv1 alert protocol version", "protocol_version" },
	{ 0x0A000102UL, "SSL routines::unsupported protocol", "protocol_version" },
	{ 0x0A00014DUL, "SSL routines::legacy sigalg disallowed or unsupported", "protocol_version" },
	{ 0x0A000410UL, "SSL routines::sslv3 alert handshake failure", "handshake_failure" },
	{ 0x0A000098UL, "SSL routines::excessive message size", "handshake_failure" },
};

START_TEST(test_same_code_reason)
{
	const struct code_case *c = &code_cases[_i];
	char text[160];
	struct vp_http_failure f = {
		.kind = HTTPS, .rc = CURLE_SSL_CONNECT_ERROR, .errtext = text, .host = "cache.internal",
		.port = 443,
	};
	struct vp_tls_obs o = {
		.event = VP_TLS_EV_FAILED, .kind = VP_KIND_REDISS, .verify = VP_VERIFY_CHAIN,
		.err = c->err, .host = "cache.internal", .cert_days_left = VP_CERT_DAYS_UNKNOWN,
	};
	struct vp_verdict_out h, r;

	snprintf(text, sizeof(text), "OpenSSL/3.0.22: error:%08lX:%s", c->err, c->text);
	vp_http_decide_failure(&f, &h);
	vp_tls_classify(&o, &r);
	ck_assert_int_eq(h.verdict, VP_VERDICT_TLS_ERROR);
	ck_assert_int_eq(r.verdict, VP_VERDICT_TLS_ERROR);
	ck_assert_str_eq(h.reason_text, c->reason);
	ck_assert_str_eq(r.reason_text, c->reason);
}
END_TEST

/* ---- failures after the connect ---- */

struct failure_case {
	enum vp_kind kind;
	int rc;
	long os_errno;
	long verify;
	const char *errtext;
	size_t bytes;
	long days;                    /* LONG_MIN: not known */
	enum vp_verdict verdict;
	const char *reason;
	const char *detail;
	const char *hint;
};

#define NODAYS (-99999)
#define TLS VP_VERDICT_TLS_ERROR
#define RST VP_VERDICT_RESET
#define LOC VP_VERDICT_LOCAL_ERROR

static const struct failure_case failure_cases[] = {
	{ HTTP, CURLE_GOT_NOTHING, 0, 0, "Empty reply from server", 0, NODAYS, RST,
	  "closed_before_reply", "then closed it before replying (0 HTTP bytes read): Empty reply "
	  "from server", "wants TLS (https://)" },
	{ HTTP, CURLE_RECV_ERROR, ECONNRESET, 0, "Recv failure: Connection reset by peer", 0,
	  NODAYS, RST, "reset_before_reply", "then reset it before replying", "overloaded" },
	{ HTTP, CURLE_SEND_ERROR, EPIPE, 0, "", 0, NODAYS, RST, "reset_before_reply",
	  "Failed sending data to the peer", "" },
	{ HTTP, CURLE_RECV_ERROR, ECONNRESET, 0, "", 120, NODAYS, RST, "reset_before_reply",
	  "in the middle of the reply (120 HTTP bytes read)", "" },
	{ HTTP, CURLE_PARTIAL_FILE, 0, 0, "transfer closed with 90 bytes remaining to read", 60,
	  NODAYS, RST, "closed_before_reply", "closed it in the middle of the reply", "" },
	{ HTTP, CURLE_WEIRD_SERVER_REPLY, 0, 0, "Unsupported HTTP version in response", 0, NODAYS,
	  PE, "unexpected_reply", "not a valid HTTP reply: Unsupported HTTP version", "not proper "
	  "HTTP" },
	{ HTTP, CURLE_OPERATION_TIMEDOUT, 0, 0, "", 0, NODAYS, VP_VERDICT_TIMEOUT, "reply_timeout",
	  "no complete reply", "" },
	{ HTTP, CURLE_OUT_OF_MEMORY, 0, 0, "", 0, NODAYS, LOC, "no_buffers", "out of memory",
	  "short of memory" },
	{ HTTP, CURLE_URL_MALFORMAT, 0, 0, "URL rejected: Malformed input to a URL function", 0,
	  NODAYS, LOC, "local_other", "the request could not be made: URL rejected", "agent's own" },
	/* certificates */
	{ HTTPS, CURLE_PEER_FAILED_VERIFICATION, 0, X509_V_ERR_CERT_HAS_EXPIRED,
	  "SSL certificate problem: certificate has expired", 0, -3, TLS, "cert_expired",
	  "TLS with 'api.internal' failed: SSL certificate problem: certificate has expired; the "
	  "certificate expired 3 days ago", "renew it" },
	{ HTTPS, CURLE_PEER_FAILED_VERIFICATION, 0, X509_V_ERR_CERT_HAS_EXPIRED, "", 0, -1, TLS,
	  "cert_expired", "; the certificate expired 1 day ago", "" },
	{ HTTPS, CURLE_PEER_FAILED_VERIFICATION, 0, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
	  "SSL certificate problem: unable to get local issuer certificate", 0, 300, TLS,
	  "unknown_ca", "unable to get local issuer certificate; the certificate is valid for 300 "
	  "more days", "set ca_file" },
	{ HTTPS, CURLE_PEER_FAILED_VERIFICATION, 0, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
	  "SSL certificate problem: self-signed certificate", 0, NODAYS, TLS, "unknown_ca",
	  "self-signed certificate", "ca_file" },
	{ HTTPS, CURLE_PEER_FAILED_VERIFICATION, 0, X509_V_OK, "SSL: no alternative certificate "
	  "subject name matches target host name 'api.internal'", 0, 30, TLS, "hostname_mismatch",
	  "no alternative certificate subject name matches", "subjectAltName" },
	{ HTTPS, CURLE_PEER_FAILED_VERIFICATION, 0, X509_V_ERR_UNSPECIFIED, "SSL: certificate "
	  "subject name 'other' does not match target host name 'api.internal'", 0, 30, TLS,
	  "hostname_mismatch", "does not match target host name", "" },
	{ HTTPS, CURLE_PEER_FAILED_VERIFICATION, 0, X509_V_ERR_CERT_NOT_YET_VALID, "", 0, 400, TLS,
	  "cert_not_yet_valid", "", "clock" },
	{ HTTPS, CURLE_PEER_FAILED_VERIFICATION, 0, X509_V_ERR_CERT_REVOKED, "", 0, NODAYS, TLS,
	  "cert_revoked", "", "revoked" },
	{ HTTPS, CURLE_PEER_FAILED_VERIFICATION, 0, X509_V_ERR_CERT_SIGNATURE_FAILURE, "", 0,
	  NODAYS, TLS, "cert_invalid", "", "reissue" },
	/* the handshake */
	{ HTTPS, CURLE_SSL_CONNECT_ERROR, 0, 0, "OpenSSL/3.0.22: error:0A00042E:SSL routines::tlsv1 "
	  "alert protocol version", 0, NODAYS, TLS, "protocol_version", "alert protocol version",
	  "TLS 1.2 or 1.3" },
	{ HTTPS, CURLE_SSL_CONNECT_ERROR, 0, 0, "error:0A000102:SSL routines::unsupported protocol",
	  0, NODAYS, TLS, "protocol_version", "", "" },
	{ HTTPS, CURLE_SSL_CONNECT_ERROR, 0, 0, "OpenSSL/3.0.22: error:0A00014D:SSL routines::legacy "
	  "sigalg disallowed or unsupported", 0, 29, TLS, "protocol_version", "legacy sigalg", "" },
	{ HTTPS, CURLE_SSL_CONNECT_ERROR, 0, 0, "error:0A00010B:SSL routines::wrong version number",
	  0, NODAYS, TLS, "handshake_failure", "wrong version number", "are not TLS: port 443" },
	{ HTTPS, CURLE_SSL_CONNECT_ERROR, 0, 0, "error:0A000410:SSL routines::sslv3 alert handshake "
	  "failure", 0, NODAYS, TLS, "handshake_failure", "alert handshake failure", "ciphers" },
	{ HTTPS, CURLE_SSL_CONNECT_ERROR, 0, X509_V_ERR_CERT_HAS_EXPIRED, "", 0, NODAYS, TLS,
	  "cert_expired", "", "" },
	/* OpenSSL's code in curl's words decides, through probes/tls_classify.c */
	{ HTTPS, CURLE_SSL_CONNECT_ERROR, 0, X509_V_ERR_CERT_HAS_EXPIRED, "OpenSSL/3.0.22: "
	  "error:0A000086:SSL routines::certificate verify failed", 0, NODAYS, TLS, "cert_expired",
	  "certificate verify failed", "" },
	{ HTTPS, CURLE_SSL_CONNECT_ERROR, 0, 0, "error:0A000102 is not it; error:0A000410:SSL "
	  "routines::sslv3 alert handshake failure", 0, NODAYS, TLS, "handshake_failure", "", "" },
	{ HTTPS, CURLE_SSL_CONNECT_ERROR, 0, 0, "error:0A0001020:SSL, error:zz:", 0, NODAYS, TLS,
	  "handshake_failure", "", "" },
	{ HTTPS, CURLE_SSL_CONNECT_ERROR, 0, 0, "error:", 0, NODAYS, TLS, "handshake_failure", "",
	  "" },
	{ HTTPS, CURLE_SSL_CONNECT_ERROR, ECONNRESET, 0, "OpenSSL SSL_connect: Connection reset by "
	  "peer in connection to api.internal:443", 0, NODAYS, RST, "reset_before_reply",
	  "reset it during the TLS handshake", "wants no TLS here" },
	{ HTTPS, CURLE_SSL_CONNECT_ERROR, 0, 0, "OpenSSL SSL_connect: SSL_ERROR_SYSCALL in "
	  "connection to api.internal:443", 0, NODAYS, RST, "closed_before_reply",
	  "closed it during the TLS handshake", "" },
	{ HTTPS, CURLE_SSL_CONNECT_ERROR, 0, 0, "error:0A000126:SSL routines::unexpected eof while "
	  "reading", 0, NODAYS, RST, "closed_before_reply", "", "" },
	{ HTTPS, CURLE_SSL_CACERT_BADFILE, 0, 0, "error setting certificate file: /etc/x.pem", 0,
	  NODAYS, LOC, "ca_file_unreadable", "/etc/x.pem", "ca_file must hold PEM" },
	/* curl's words are escaped too */
	{ HTTP, CURLE_WEIRD_SERVER_REPLY, 0, 0, "bad \x1b[2J\n", 0, NODAYS, PE, "unexpected_reply",
	  "bad \\x1b[2J\\n", "" },
	{ HTTP, CURLE_WEIRD_SERVER_REPLY, 0, 0, "", 0, NODAYS, PE, "unexpected_reply",
	  "Weird server reply", "" },
};

START_TEST(test_failure)
{
	const struct failure_case *c = &failure_cases[_i];
	struct vp_http_failure f = {
		.kind = c->kind, .rc = c->rc, .os_errno = c->os_errno, .verify_result = c->verify,
		.errtext = c->errtext, .host = "api.internal", .port = 443, .bytes_read = c->bytes,
		.cert_days_known = c->days != NODAYS, .cert_days = c->days,
	};
	struct vp_verdict_out v;

	vp_http_decide_failure(&f, &v);
	assert_verdict(&v, _i, c->verdict, c->reason, c->detail, c->hint);
}
END_TEST

/* ---- the probe against a scripted server ---- */

enum when { ON_REQUEST, ON_FIRST_BYTES };
enum after { HOLD, CLOSE, RESET };

#define BIG "(a 100000-byte body)"

struct probe_row {
	enum vp_kind kind;
	const char *path;
	struct vp_status_ranges expect;
	const char *host_header;
	enum when when;
	const char *reply;            /* NULL: nothing; BIG: 200 with 100000 bytes */
	enum after after;
	uint32_t timeout_ms;
	enum vp_verdict verdict;
	const char *reason;
	const char *detail;
	const char *request;          /* the request must hold this, NULL: not checked */
};

static const struct probe_row probe_rows[] = {
	{ HTTP, "/healthz", { 0 }, NULL, ON_REQUEST, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	  "Server: fake\r\n\r\nok", HOLD, 3000, OK, "http_200", "HTTP 200 OK to GET /healthz from "
	  "'fake', 2 body bytes", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:" },
	{ HTTP, "/a?b=c", { 0 }, "api.internal:8080", ON_REQUEST, "HTTP/1.1 204 No Content\r\n\r\n",
	  HOLD, 3000, OK, "http_204", "", "GET /a?b=c HTTP/1.1\r\nHost: api.internal:8080\r\n" },
	{ HTTP, "/", { 0 }, NULL, ON_REQUEST, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: "
	  "19\r\nVia: 1.1 google\r\n\r\nno healthy upstream", HOLD, 3000, PE, "http_503",
	  "via '1.1 google', expected 200-399; body \"no healthy upstream\"", "User-Agent: vpcprobe/" },
	{ HTTP, "/missing", { 0 }, NULL, ON_REQUEST, "HTTP/1.1 404 Not Found\r\nContent-Length: 0"
	  "\r\n\r\n", HOLD, 3000, PE, "http_404", "HTTP 404 Not Found to GET /missing", NULL },
	{ HTTP, "/missing", R2(200, 299, 404, 404), NULL, ON_REQUEST, "HTTP/1.1 404 Not Found\r\n"
	  "Content-Length: 0\r\n\r\n", HOLD, 3000, OK, "http_404", "", NULL },
	{ HTTP, "/", { 0 }, NULL, ON_REQUEST, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	  "3\r\nabc\r\n0\r\n\r\n", HOLD, 3000, OK, "http_200", "3 body bytes", NULL },
	{ HTTP, "/", { 0 }, NULL, ON_REQUEST, "HTTP/1.0 200 OK\r\n\r\nuntil close", CLOSE, 3000, OK,
	  "http_200", "11 body bytes", NULL },
	{ HTTP, "/", { 0 }, NULL, ON_REQUEST, BIG, HOLD, 3000, OK, "http_200",
	  "(read up to the 64 KiB bound)", NULL },
	{ HTTP, "/", { 0 }, NULL, ON_REQUEST, "\x01\x02SSH-2.0-not-http\r\n", HOLD, 3000, PE,
	  "unexpected_reply", "it begins \"\\x01\\x02SSH-2.0-not-http\\r\\n\"", NULL },
	{ HTTP, "/", { 0 }, NULL, ON_REQUEST, NULL, CLOSE, 3000, RST, "closed_before_reply",
	  "then closed it before replying", NULL },
	{ HTTP, "/", { 0 }, NULL, ON_REQUEST, NULL, RESET, 3000, RST, "reset_before_reply",
	  "then reset it before replying", NULL },
	{ HTTP, "/", { 0 }, NULL, ON_REQUEST, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
	  "short", CLOSE, 3000, RST, "closed_before_reply", "in the middle of the reply", NULL },
	{ HTTP, "/", { 0 }, NULL, ON_REQUEST, NULL, HOLD, 300, VP_VERDICT_TIMEOUT, "reply_timeout",
	  "no complete reply before the deadline", NULL },
	{ HTTP, "/", { 0 }, NULL, ON_REQUEST, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
	  HOLD, 300, VP_VERDICT_TIMEOUT, "reply_timeout", "", NULL },
	/* https to a port that answers in plain text */
	{ HTTPS, "/", { 0 }, NULL, ON_FIRST_BYTES, "HTTP/1.1 400 Bad Request\r\n\r\n", HOLD, 3000,
	  TLS, "handshake_failure", "TLS with '127.0.0.1' failed", NULL },
	{ HTTPS, "/", { 0 }, NULL, ON_FIRST_BYTES, NULL, CLOSE, 3000, RST, "closed_before_reply",
	  "during the TLS handshake", NULL },
};

struct conn {
	uv_tcp_t tcp;
	struct fake *f;               /* borrowed */
	char in[8192];
	size_t inlen;
	bool acted;
	bool closing;
	struct conn *next;
};

struct fake {
	uv_tcp_t listener;
	const struct probe_row *row;
	struct conn *conns;           /* owned, until their close callbacks */
	char request[1024];           /* the first request seen */
	int requests;
};

static void conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct fake *f = c->f;

	for (struct conn **p = &f->conns; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	free(c);
}

static void conn_end(struct conn *c, enum after how)
{
	if (c->closing || how == HOLD)
		return;
	c->closing = true;
	if (how == RESET)
		ck_assert_int_eq(uv_tcp_close_reset(&c->tcp, conn_closed), 0);
	else
		uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

struct wreq {
	uv_write_t req;
	struct conn *c;
	char data[];
};

static void written(uv_write_t *w, int status)
{
	struct wreq *r = (struct wreq *)w;

	if (status == 0)
		conn_end(r->c, r->c->f->row->after);
	free(r);
}

static void reply(struct conn *c)
{
	const char *text = c->f->row->reply;
	size_t len;
	struct wreq *w;
	uv_buf_t b;

	if (text == NULL) {
		conn_end(c, c->f->row->after);
		return;
	}
	len = strcmp(text, BIG) == 0 ? 100000 + 64 : strlen(text);
	w = malloc(sizeof(*w) + len);
	ck_assert_ptr_nonnull(w);
	w->c = c;
	if (strcmp(text, BIG) == 0) {
		int n = snprintf(w->data, len, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");

		memset(w->data + n, 'x', len - (size_t)n);
		len = (size_t)n + 100000;
	} else {
		memcpy(w->data, text, len);
	}
	b = uv_buf_init(w->data, (unsigned)len);
	ck_assert_int_eq(uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, written), 0);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	(void)suggested;
	if (c->inlen == sizeof(c->in))
		c->inlen = 0; /* a TLS ClientHello does not need keeping */
	*buf = uv_buf_init(c->in + c->inlen, (unsigned)(sizeof(c->in) - c->inlen - 1));
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	struct fake *f = c->f;

	(void)buf;
	if (nread < 0) {
		conn_end(c, CLOSE);
		return;
	}
	c->inlen += (size_t)nread;
	c->in[c->inlen] = '\0';
	if (c->acted || c->closing)
		return;
	if (f->row->when == ON_REQUEST && strstr(c->in, "\r\n\r\n") == NULL)
		return;
	c->acted = true;
	if (f->requests++ == 0) {
		size_t n = strlen(c->in) < sizeof(f->request) ? strlen(c->in) : sizeof(f->request) - 1;

		memcpy(f->request, c->in, n);
		f->request[n] = '\0';
	}
	reply(c);
}

static void fake_conn(uv_stream_t *l, int status)
{
	struct fake *f = l->data;
	struct conn *c = calloc(1, sizeof(*c));

	ck_assert_int_eq(status, 0);
	ck_assert_ptr_nonnull(c);
	c->f = f;
	ck_assert_int_eq(uv_tcp_init(l->loop, &c->tcp), 0);
	c->tcp.data = c;
	c->next = f->conns;
	f->conns = c;
	ck_assert_int_eq(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
	ck_assert_int_eq(uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read), 0);
}

static uint16_t fake_listen(uv_loop_t *loop, struct fake *f)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_storage bound;
	int len = sizeof(bound);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(uv_tcp_init(loop, &f->listener), 0);
	f->listener.data = f;
	ck_assert_int_eq(uv_tcp_bind(&f->listener, (struct sockaddr *)&sin, 0), 0);
	ck_assert_int_eq(uv_listen((uv_stream_t *)&f->listener, 64, fake_conn), 0);
	ck_assert_int_eq(uv_tcp_getsockname(&f->listener, (struct sockaddr *)&bound, &len), 0);
	return ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void fake_close(struct fake *f)
{
	for (struct conn *c = f->conns; c; c = c->next)
		conn_end(c, CLOSE);
	uv_close((uv_handle_t *)&f->listener, NULL);
}

struct results {
	struct vp_probe_result res[8];
	int n;
};

static void on_result(struct vp_probe_req *req, const struct vp_probe_result *res, void *arg)
{
	struct results *box = arg;

	(void)req;
	ck_assert_int_lt(box->n, N_ELEMS(box->res));
	box->res[box->n++] = *res;
}

static void target_for(struct vp_target *t, const struct probe_row *row, uint16_t port)
{
	memset(t, 0, sizeof(*t));
	t->url.kind = row->kind;
	t->url.host_type = VP_HOST_IPV4;
	snprintf(t->url.host, sizeof(t->url.host), "127.0.0.1");
	t->url.path = (char *)row->path;    /* borrowed, as host_header */
	t->url.port = port;
	t->expect_status = row->expect;
	t->host_header = (char *)row->host_header;
}

static void req_for(struct vp_probe_req *req, const struct vp_target *t, uint32_t timeout_ms)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&req->addr;

	memset(req, 0, sizeof(*req));
	req->kind = t->url.kind;
	req->target = t;
	req->timeout_ms = timeout_ms;
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	in->sin_port = htons(t->url.port);
}

/* Closes everything and checks that nothing was left open. */
static void finish(uv_loop_t *loop, struct vp_engine *e, struct fake *f)
{
	if (f != NULL)
		fake_close(f);
	vp_engine_close(e, NULL);
	ck_assert_int_eq(uv_run(loop, UV_RUN_DEFAULT), 0);
	vp_engine_free(e);
	ck_assert_int_eq(uv_loop_close(loop), 0);
}

START_TEST(test_probe)
{
	const struct probe_row *row = &probe_rows[_i];
	struct fake f = { .row = row };
	struct results box = { .n = 0 };
	const struct vp_verdict_out *v = &box.res[0].v;
	struct vp_target t;
	struct vp_probe_req req;
	struct vp_engine *e;
	uv_loop_t loop;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	e = vp_engine_new(&loop, 0, on_result, &box);
	target_for(&t, row, fake_listen(&loop, &f));
	req_for(&req, &t, row->timeout_ms);
	vp_engine_submit(e, &req);
	while (box.n == 0)
		uv_run(&loop, UV_RUN_ONCE);

	assert_verdict(v, _i, row->verdict, row->reason, row->detail, "");
	ck_assert_msg(box.res[0].connect_ms >= 0, "row %d: connect not timed", _i);
	ck_assert_msg(box.res[0].protocol_ms >= 0, "row %d: protocol not timed", _i);
	if (row->request != NULL)
		ck_assert_msg(strstr(f.request, row->request) != NULL, "row %d: request\n%s\nlacks %s",
		              _i, f.request, row->request);
	finish(&loop, e, &f);
}
END_TEST

/* The connect is the probe's: a refused one is the TCP probe's refusal. */
START_TEST(test_refused)
{
	struct probe_row row = { .kind = VP_KIND_HTTP, .path = "/" };
	struct results box = { .n = 0 };
	struct vp_target t;
	struct vp_probe_req req;
	struct vp_engine *e;
	uv_tcp_t tmp;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_storage bound;
	int len = sizeof(bound);
	uv_loop_t loop;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	/* A port that was just free: bound, never listened on, closed. */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(uv_tcp_init(&loop, &tmp), 0);
	ck_assert_int_eq(uv_tcp_bind(&tmp, (struct sockaddr *)&sin, 0), 0);
	ck_assert_int_eq(uv_tcp_getsockname(&tmp, (struct sockaddr *)&bound, &len), 0);
	uv_close((uv_handle_t *)&tmp, NULL);
	e = vp_engine_new(&loop, 0, on_result, &box);
	target_for(&t, &row, ntohs(((struct sockaddr_in *)&bound)->sin_port));
	req_for(&req, &t, 2000);
	vp_engine_submit(e, &req);
	while (box.n == 0)
		uv_run(&loop, UV_RUN_ONCE);
	ck_assert_int_eq(box.res[0].v.verdict, VP_VERDICT_REFUSED);
	ck_assert_int_eq(box.res[0].v.reason, VP_REASON_RST_TO_SYN);
	ck_assert_int_eq(box.res[0].v.err, ECONNREFUSED);
	ck_assert_msg(box.res[0].connect_ms < 0, "a refused connect has no connect time");
	finish(&loop, e, NULL);
}
END_TEST

/* Several probes at once share the loop's one multi handle; all of them
 * finish, and it closes with the last. */
START_TEST(test_concurrent)
{
	const struct probe_row *row = &probe_rows[0];
	struct fake f = { .row = row };
	struct results box = { .n = 0 };
	struct vp_target t;
	struct vp_probe_req req[6];
	struct vp_engine *e;
	uv_loop_t loop;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	e = vp_engine_new(&loop, 0, on_result, &box);
	target_for(&t, row, fake_listen(&loop, &f));
	for (int i = 0; i < N_ELEMS(req); i++) {
		req_for(&req[i], &t, 3000);
		vp_engine_submit(e, &req[i]);
	}
	while (box.n < N_ELEMS(req))
		uv_run(&loop, UV_RUN_ONCE);
	for (int i = 0; i < box.n; i++)
		assert_verdict(&box.res[i].v, i, OK, "http_200", "", "");
	ck_assert_int_eq(f.requests, N_ELEMS(req));
	finish(&loop, e, &f);
}
END_TEST

/* Closing the engine in the middle of a transfer takes it out of the multi
 * and closes everything. */
START_TEST(test_close_in_flight)
{
	struct probe_row row = { .kind = VP_KIND_HTTP, .path = "/", .when = ON_REQUEST,
	                         .after = HOLD };
	struct fake f = { .row = &row };
	struct results box = { .n = 0 };
	struct vp_target t;
	struct vp_probe_req req;
	struct vp_engine *e;
	uv_loop_t loop;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	e = vp_engine_new(&loop, 0, on_result, &box);
	target_for(&t, &row, fake_listen(&loop, &f));
	req_for(&req, &t, 10000);
	vp_engine_submit(e, &req);
	while (f.requests == 0)
		uv_run(&loop, UV_RUN_ONCE);
	finish(&loop, e, &f);
	ck_assert_int_eq(box.n, 0);
}
END_TEST

static Suite *http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *pure = tcase_create("decide");
	TCase *probe = tcase_create("probe");

	tcase_add_loop_test(pure, test_expect, 0, N_ELEMS(expect_cases));
	tcase_add_loop_test(pure, test_status, 0, N_ELEMS(status_cases));
	tcase_add_test(pure, test_status_tls_words);
	tcase_add_test(pure, test_status_from);
	tcase_add_loop_test(pure, test_x509, 0, N_ELEMS(x509_cases));
	tcase_add_loop_test(pure, test_same_reason, 0, N_ELEMS(x509_cases));
	tcase_add_loop_test(pure, test_same_code_reason, 0, N_ELEMS(code_cases));
	tcase_add_loop_test(pure, test_failure, 0, N_ELEMS(failure_cases));
	tcase_set_timeout(probe, 30);
	tcase_add_loop_test(probe, test_probe, 0, N_ELEMS(probe_rows));
	tcase_add_test(probe, test_refused);
	tcase_add_test(probe, test_concurrent);
	tcase_add_test(probe, test_close_in_flight);
	suite_add_tcase(s, pure);
	suite_add_tcase(s, probe);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(http_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

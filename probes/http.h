/* The http(s) probe (issue 4): one GET through libcurl on the agent's loop
 * (agent/curl_uv.h), on the probe's own socket, so that a refused, dropped
 * or ICMP-rejected connect gets the TCP probe's verdicts and reasons.
 *
 * probes/http.c does the I/O; the decisions are pure functions of what
 * curl reported (probes/http_status.c), each a table in tests/test_http.c. */
#ifndef VP_HTTP_H
#define VP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "probes/classify.h"

/* A status code the server answered, as the decision sees it. */
struct vp_http_answer {
	enum vp_kind kind;             /* VP_KIND_HTTP or VP_KIND_HTTPS */
	long status;                   /* 0: the reply had no HTTP status line */
	const struct vp_status_ranges *expect; /* borrowed, may be NULL: 200-399 */
	const char *path;              /* borrowed: what was asked for */
	const char *server;            /* borrowed: the Server header, may be NULL or "" */
	const char *via;               /* borrowed: the Via header, may be NULL or "" */
	const uint8_t *body;           /* borrowed: the first bytes of the body */
	size_t body_len;
	size_t body_total;             /* body bytes read in all */
	bool body_cut;                 /* the body went past VP_REPLY_MAX and was not read on */
	double tls_ms;                 /* the TLS handshake, < 0 for none */
	bool cert_days_known;
	long cert_days;                /* days until the server's certificate expires */
};

/* ok when the status is in expect_status, protocol_error otherwise; reason
 * http_NNN (unexpected_reply when there was no status line), a detail with
 * the body's first bytes escaped on failure, and a hint in Cloud Run / VPC
 * terms: 502/503/504 from a load balancer without a healthy backend,
 * 401/403 IAM or authorization, 404 a wrong path or Host. */
void vp_http_decide_status(const struct vp_http_answer *a, struct vp_verdict_out *out);

/* Whether 'status' is in 'expect' (NULL or n == 0: 200-399). */
bool vp_http_status_expected(const struct vp_status_ranges *expect, long status);

/* 'expect' as expect_status writes it ("200-399", "200,204"). */
void vp_http_expect_text(const struct vp_status_ranges *expect, char *out, size_t outlen);

/* A transfer that ended without a status to judge, after the connect
 * (a failed connect is the TCP probe's to classify). */
struct vp_http_failure {
	enum vp_kind kind;
	int rc;                        /* the CURLcode */
	long os_errno;                 /* CURLINFO_OS_ERRNO, 0 when none */
	long verify_result;            /* CURLINFO_SSL_VERIFYRESULT (X509_V_*), or the
	                                * first error the verify callback saw */
	const char *errtext;           /* borrowed: curl's error buffer, may be "" */
	const char *host;              /* borrowed: the name the certificate must carry */
	uint16_t port;
	size_t bytes_read;             /* HTTP bytes (headers and body) received */
	bool cert_days_known;
	long cert_days;
};

/* reset (reset_before_reply, closed_before_reply), protocol_error
 * (unexpected_reply), tls_error (cert_expired, cert_not_yet_valid,
 * unknown_ca, hostname_mismatch, cert_revoked, cert_invalid,
 * handshake_failure, protocol_version), or local_error, with a detail and
 * a hint. */
void vp_http_decide_failure(const struct vp_http_failure *f, struct vp_verdict_out *out);

/* The tls_error reason of an OpenSSL verify result (X509_V_ERR_*):
 * "cert_expired", "unknown_ca", ...; X509_V_OK, which curl reports when
 * its own host name check failed, gives "hostname_mismatch". */
const char *vp_tls_verify_reason(long x509_err);

#endif
